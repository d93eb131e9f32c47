"""Crash safety: SIGKILL the watching process mid-run, restart it, lose and repeat nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from jobs_helpers import make_client, spec

from rlft._manager import JobManager
from rlft._store import JobStore
from rlft.testing import FakeProvider, FakeSettings

WATCHER = Path(__file__).with_name("jobs_watcher.py")
STEPS = 200  # long enough that a busy machine never lets the job end before the kill


def watcher(db: Path, state: Path, local_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WATCHER), str(db), str(state), local_id, *extra],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def remote_events(state: Path, job_id: str) -> list[str]:
    """Every event the backend has for the job (listing events does not move the fake on)."""
    provider = FakeProvider(settings=FakeSettings(state_dir=state))
    return [event.id for event in anyio.run(lambda: provider.list_events(job_id))]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_killed_watcher_resumes_without_gaps_or_duplicates(tmp_path: Path) -> None:
    db, state = tmp_path / "jobs.db", tmp_path / "state"

    async def create() -> tuple[str, str]:
        async with make_client(db, settings={"state_dir": state, "steps": STEPS}) as client:
            (job,) = await JobManager(client=client).submit([spec("crash")])
            return job.local_id or "", job.id

    local_id, job_id = anyio.run(create)

    # Run 1: a slow consumer; SIGKILL once it has printed 8 events.
    first = watcher(db, state, local_id, "--delay", "0.02")
    assert first.stdout is not None
    header = first.stdout.readline()
    assert header.startswith(f"attached {local_id} {job_id} cursor=None")
    printed_1: list[str] = []
    while len(printed_1) < 8:
        line = first.stdout.readline()
        assert line.startswith("event "), line
        printed_1.append(line.split()[1])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    first.stdout.close()

    at_kill = remote_events(state, job_id)
    assert "status succeeded" not in " ".join(at_kill)  # killed mid-run, not after the end
    assert len(at_kill) < 2 * STEPS
    saved = [e.id for e in anyio.run(lambda: JobStore(path=db).events(local_id))]
    assert saved == at_kill[: len(saved)]  # the log is a prefix of the truth: no gap
    assert printed_1 == saved[: len(printed_1)]  # nothing printed that was not saved first

    # Run 2: reattach from the store, replay what was saved but not printed, then go live.
    second = watcher(db, state, local_id, printed_1[-1])
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    lines = out.splitlines()
    assert lines[0] == f"attached {local_id} {job_id} cursor={saved[-1]}"  # resumed, not restarted
    assert lines[-1] == "done succeeded"
    printed_2 = [line.split()[1] for line in lines if line.startswith("event ")]

    everything = remote_events(state, job_id)
    assert any(e.endswith(f"-evt-{len(everything):05d}") for e in everything)
    seen = printed_1 + printed_2
    assert seen == everything  # no gap, no duplicate, in order, across both runs
    assert len(set(seen)) == len(seen)
    log = [e.id for e in anyio.run(lambda: JobStore(path=db).events(local_id))]
    assert log == everything
    (row,) = anyio.run(JobStore(path=db).jobs)
    assert row.status == "succeeded" and row.event_cursor == everything[-1]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_kill_between_the_end_and_the_last_events_loses_nothing(tmp_path: Path) -> None:
    db, state = tmp_path / "jobs.db", tmp_path / "state"

    async def create() -> tuple[str, str]:
        async with make_client(db, settings={"state_dir": state, "steps": 4}) as client:
            (job,) = await JobManager(client=client).submit([spec("end")])
            return job.local_id or "", job.id

    local_id, job_id = anyio.run(create)

    # Run 1 dies right after saving the terminal status, before reading the last events.
    first = watcher(db, state, local_id, "--die-at-end")
    out, _ = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL, out
    assert "saved terminal status; dying" in out
    (row,) = anyio.run(JobStore(path=db).jobs)
    assert row.status == "succeeded" and not row.settled  # ended, but not finished with
    everything = remote_events(state, job_id)
    saved = [e.id for e in anyio.run(lambda: JobStore(path=db).events(local_id))]
    assert saved != everything  # the crash window: the last events were not stored

    # Run 2 is a default restart (`rlft jobs watch` with no ids): it must pick the job up.
    second = watcher(db, state, "-")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert out.splitlines()[0].startswith(f"attached {local_id} {job_id}")
    assert out.splitlines()[-1] == "done succeeded"
    log = [e.id for e in anyio.run(lambda: JobStore(path=db).events(local_id))]
    assert log == everything  # every event stored, none twice
    (row,) = anyio.run(JobStore(path=db).jobs)
    assert row.settled and row.event_cursor == everything[-1]

    # Settled now: a third default restart has nothing left to do.
    third = watcher(db, state, "-")
    out, _ = third.communicate(timeout=120)
    assert out.strip() == "nothing to watch"
