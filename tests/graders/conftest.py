"""Shared fixtures for the grader tests: a small sandbox pool and a scripted judge."""

from __future__ import annotations

import importlib
import io
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rlft.graders import compile as compile_grader
from rlft.graders._runtime.judge import JudgeError, JudgeRequest, JudgeResponse
from rlft.graders._sandbox.pool import SandboxLimits, SandboxPool


@pytest.fixture(scope="session")
def pool() -> Iterator[SandboxPool]:
    """Two workers, a 2 s timeout and 512 MB: the failure modes finish fast."""
    shared = SandboxPool(workers=2, limits=SandboxLimits(timeout_s=2.0, memory_mb=512))
    yield shared
    shared.close()


class ScriptedJudge:
    """A judge that answers with ``reply(request)`` and records every request."""

    def __init__(self, reply: str | Callable[[JudgeRequest], str]) -> None:
        self.reply = reply
        self.requests: list[JudgeRequest] = []

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        self.requests.append(request)
        text = self.reply(request) if callable(self.reply) else self.reply
        if text == "<fail>":
            raise JudgeError("judge unreachable (scripted)")
        return JudgeResponse(text=text)


@pytest.fixture
def judge_factory() -> Callable[[str | Callable[[JudgeRequest], str]], ScriptedJudge]:
    return ScriptedJudge


def _forget_lambda_modules(folders: tuple[str, ...] = ()) -> None:
    # The zip's own modules, and any library imported from an extracted zip (rapidfuzz built
    # for Lambda's Python): later tests must import this environment's copies again.
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if name.startswith(("rlft_grader_handler", "rlft_grader_engine")) or (
            folders and origin.startswith(folders)
        ):
            del sys.modules[name]


@pytest.fixture
def load_lambda(tmp_path: Path) -> Iterator[Callable[..., ModuleType]]:
    """Build a grader's Lambda zip, extract it, and import its handler module from there."""
    folders: list[str] = []

    def load(grader: Any, **options: Any) -> ModuleType:
        package = compile_grader(grader, "bedrock", **options)
        folder = tmp_path / f"lambda-{len(folders)}"
        with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
            archive.extractall(folder)
        _forget_lambda_modules()
        sys.path.insert(0, str(folder))
        folders.append(str(folder))
        module = importlib.import_module(package.handler.rpartition(".")[0])
        assert Path(module.__file__ or "").parent == folder  # the zip's copy
        return module

    yield load
    for folder in folders:
        sys.path.remove(folder)
    _forget_lambda_modules(tuple(folders))
