"""docs/jobs.md: its Python runs, and every CLI option it mentions exists."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from jobs_helpers import make_client, spec

import rlft
from rlft import JobStatus
from rlft._manager import JobManager, JobUpdate
from rlft.cli._jobs import jobs, preflight, run

DOC = Path(__file__).parents[2] / "docs" / "jobs.md"
pytestmark = pytest.mark.anyio


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


async def test_the_sweep_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Until the lead exports them from `rlft`, the example reaches them like users will.
    monkeypatch.setattr(rlft, "JobManager", JobManager, raising=False)
    monkeypatch.setattr(rlft, "JobUpdate", JobUpdate, raising=False)
    (source,) = [block for block in python_blocks() if "async def sweep" in block]
    namespace: dict[str, object] = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    async with make_client(tmp_path / "jobs.db", settings={"steps": 3}) as client:
        done = await namespace["sweep"](client, spec("base"))  # type: ignore[operator]
        assert [job.record.name for job in done] == ["lr0.5", "lr1.0", "lr2.0"]
        assert {job.status for job in done} == {JobStatus.SUCCEEDED}


def test_the_rates_example_runs() -> None:
    (source,) = [block for block in python_blocks() if "RateTable(" in block]
    namespace: dict[str, object] = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    guard = namespace["guard"]
    assert guard.rates.hourly("bedrock", "amazon.nova-2-lite-v1:0:256k") == 40.0  # type: ignore[attr-defined]


def _options(command: click.Command) -> set[str]:
    found = {opt for param in command.params for opt in getattr(param, "opts", [])}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found |= _options(sub)
    return found


def test_every_cli_option_in_the_doc_exists() -> None:
    known = _options(run) | _options(preflight) | _options(jobs)
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", DOC.read_text(encoding="utf-8")))
    assert mentioned and mentioned <= known, sorted(mentioned - known)
    subcommands = set(re.findall(r"rlft jobs (\w+)", DOC.read_text(encoding="utf-8")))
    assert subcommands <= set(jobs.commands) | {"pause|resume|cancel"}
