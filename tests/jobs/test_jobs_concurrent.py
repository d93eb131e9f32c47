"""Concurrent creates: two processes creating the same job at once make one paid job.

The backend here ignores idempotency keys (``FakeSettings(ignore_idempotency=True)``), so the job
store's create reservation is the only thing between the two processes and a second job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import anyio
import pytest

from rlft._store import JobStore
from rlft.testing import FakeProvider, FakeSettings

CREATOR = Path(__file__).with_name("jobs_creator.py")


def creator(db: Path, state: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CREATOR), str(db), str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, **env},
    )


def read_until(stream: IO[str] | None, prefix: str, *, not_before: str | None = None) -> str:
    """Read lines until one starts with ``prefix``; EOF or ``not_before`` first fails the test."""
    assert stream is not None
    seen = []
    for line in stream:
        seen.append(line)
        if line.startswith(prefix):
            return line.strip()
        if not_before is not None and line.startswith(not_before):
            break
    raise AssertionError(f"no line starting {prefix!r}; got {seen}")


def remote_jobs(state: Path) -> list[str]:
    provider = FakeProvider(settings=FakeSettings(state_dir=state))
    return [record.id for record in anyio.run(lambda: provider.list_jobs())]


def finish(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(input="\n", timeout=120)
    assert process.returncode == 0, out
    return out


def test_the_backend_really_ignores_keys(tmp_path: Path) -> None:
    # Without the store's reservation, the same create twice makes two jobs on this backend.
    from jobs_helpers import make_client, spec

    async def twice() -> list[str]:
        settings = {"state_dir": tmp_path / "state", "ignore_idempotency": True}
        async with make_client(False, settings=settings) as client:
            first = await client.jobs.create(spec=spec("same"))
            second = await client.jobs.create(spec=spec("same"))
            return [first.id, second.id]

    ids = anyio.run(twice)
    assert ids[0] != ids[1] and len(remote_jobs(tmp_path / "state")) == 2


def test_two_processes_creating_the_same_job_make_one(tmp_path: Path) -> None:
    db, state = tmp_path / "jobs.db", tmp_path / "state"
    first = creator(db, state)
    read_until(first.stdout, "creating")  # the first holds the reservation, mid-create
    second = creator(db, state)
    try:
        read_until(
            second.stdout,
            "waiting: another process is creating the same holding job",
            not_before="creating",  # the second called the backend's create: two paid jobs
        )
    except AssertionError:
        for process in (first, second):
            process.kill()
            process.communicate()
        raise
    first_out = finish(first)
    second_out = finish(second)
    assert "creating" not in second_out  # the second never called the backend's create
    job_1 = [line for line in first_out.splitlines() if line.startswith("RESULT ")]
    job_2 = [line for line in second_out.splitlines() if line.startswith("RESULT ")]
    assert job_1 == job_2 and len(job_1) == 1  # the same local id and backend id
    assert len(remote_jobs(state)) == 1  # one paid job
    (row,) = anyio.run(JobStore(path=db).jobs)
    assert f"RESULT {row.local_id} {row.provider_job_id}" == job_1[0]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("landed", [False, True], ids=["killed-before-create", "killed-after"])
def test_a_reservation_whose_owner_died_is_reclaimed(tmp_path: Path, landed: bool) -> None:
    db, state = tmp_path / "jobs.db", tmp_path / "state"
    env = {"HOLD_AFTER": "1"} if landed else {}
    first = creator(db, state, **env)
    read_until(first.stdout, "landed" if landed else "creating")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.stdout is not None
    first.stdout.close()
    (orphan,) = anyio.run(JobStore(path=db).jobs)
    assert orphan.creating  # the store never heard back
    assert len(remote_jobs(state)) == (1 if landed else 0)

    out = finish(creator(db, state))
    # Reclaimed at once (the OS dropped the dead process's lock); a create that landed is found
    # by its key in the backend's listing instead of being made again.
    assert "waiting" not in out
    assert ("creating" in out) is not landed
    (row,) = anyio.run(JobStore(path=db).jobs)
    assert row.local_id == orphan.local_id and not row.creating
    assert remote_jobs(state) == [row.provider_job_id]  # still one paid job


def test_two_tasks_creating_the_same_job_make_one(tmp_path: Path) -> None:
    from jobs_helpers import make_client, spec

    async def together() -> tuple[list[str], list[str]]:
        settings = {"state_dir": tmp_path / "state", "ignore_idempotency": True}
        ids: list[str] = []
        async with make_client(tmp_path / "jobs.db", settings=settings) as client:

            async def create() -> None:
                ids.append((await client.jobs.create(spec=spec("same"))).id)

            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(create)
            provider = client.provider
            assert isinstance(provider, FakeProvider)
            return ids, [record.id for record in await provider.list_jobs()]

    ids, remote = anyio.run(together)
    assert len(set(ids)) == 1 and remote == ids[:1]  # four callers, one paid job
