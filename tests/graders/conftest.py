"""Shared fixtures for the grader tests: a small sandbox pool and a scripted judge."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from rlft.graders._judge import JudgeError, JudgeRequest, JudgeResponse
from rlft.graders._sandbox import SandboxLimits, SandboxPool


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
