"""Crash evidence and damaged job folders, without training: death reasons, corrupt files, seals.

Each job folder here is written by hand (as a crash would leave it), so nothing trains.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.local.conftest import make_provider

from rlft._models import JobStatus, StepMetrics
from rlft.exceptions import ProviderError, UsageError
from rlft.workers.death import (
    OomCounters,
    booted_at,
    explain_exit,
    explain_lost,
    read_counters,
)
from rlft.workers.jobdir import (
    CHECKPOINT_MANIFEST,
    ErrorRecord,
    JobDir,
    JobState,
    checkpoint_problem,
    seal_checkpoint,
    utcnow,
)
from rlft_providers.local._jobfile import LocalJobFile
from rlft_providers.local._provider import LocalProvider

pytestmark = pytest.mark.anyio


# --- why a worker died ----------------------------------------------------------------------------


def test_a_sigkill_with_no_oom_kill_counted_is_not_blamed_on_memory() -> None:
    same = OomCounters(cgroup_file="/cg/memory.events", cgroup=2, system=7)
    death = explain_exit(-signal.SIGKILL, same, same)
    assert death.signal == "SIGKILL" and death.oom_killed is False
    assert "not by the out-of-memory killer" in death.message
    assert "stayed at 7" in death.message and "something else sent it" in death.message


def test_an_oom_kill_in_the_workers_cgroup_is_reported_with_the_counter() -> None:
    before = OomCounters(cgroup_file="/cg/memory.events", cgroup=0, system=3)
    after = OomCounters(cgroup_file="/cg/memory.events", cgroup=1, system=4)
    death = explain_exit(-signal.SIGKILL, before, after)
    assert death.oom_killed is True
    assert "the out-of-memory killer acted" in death.message
    assert "oom_kill 0 -> 1 in /cg/memory.events" in death.message


def test_evidence_that_does_not_decide_says_so() -> None:
    # Machine-wide kills but no per-cgroup counter: it may or may not have been this worker.
    death = explain_exit(-signal.SIGKILL, OomCounters(system=3), OomCounters(system=5))
    assert death.oom_killed is None and "killed 2 process(es)" in death.message
    assert "perhaps this worker" in death.message
    # Machine-wide kills, but none in the worker's cgroup: not the OOM killer.
    before = OomCounters(cgroup_file="/cg/x", cgroup=4, system=3)
    after = OomCounters(cgroup_file="/cg/x", cgroup=4, system=5)
    assert explain_exit(-signal.SIGKILL, before, after).oom_killed is False
    # No counters at all.
    death = explain_exit(-signal.SIGKILL, OomCounters(), OomCounters())
    assert death.oom_killed is None and "unknown" in death.message
    # The OOM killer only sends SIGKILL; exit codes are not deaths by signal.
    assert explain_exit(-signal.SIGSEGV, OomCounters(), OomCounters()).oom_killed is False
    assert explain_exit(-signal.SIGSEGV, OomCounters(), OomCounters()).signal == "SIGSEGV"
    assert explain_exit(1, OomCounters(), OomCounters()).message == "exited with code 1"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_counters_are_read_from_cgroup_v1_or_v2_and_vmstat(tmp_path: Path, version: str) -> None:
    proc, sys_cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "vmstat").write_text("pgfault 10\noom_kill 12\n")
    if version == "v2":
        (proc / "self" / "cgroup").write_text("0::/user.slice/job\n")
        events = sys_cgroup / "user.slice" / "job" / "memory.events"
        events.parent.mkdir(parents=True)
        events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    else:
        (proc / "self" / "cgroup").write_text("5:cpu:/\n4:memory:/box/1\n0::/\n")
        events = sys_cgroup / "memory" / "box" / "1" / "memory.oom_control"
        events.parent.mkdir(parents=True)
        events.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    counters = read_counters(proc, sys_cgroup)
    assert counters.system == 12
    assert counters.cgroup_file == str(events)
    assert counters.cgroup == (2 if version == "v2" else 3)
    assert read_counters(tmp_path / "nothing", tmp_path / "nothing") == OomCounters()


def test_this_machine_offers_dmesg_free_evidence() -> None:
    # The launcher's evidence is real here: the kernel's machine-wide counter is readable.
    assert read_counters().system is not None
    assert booted_at() is not None


def test_a_vanished_launcher_is_told_apart_from_a_restart_by_the_boot_time(
    tmp_path: Path,
) -> None:
    (tmp_path / "stat").write_text("cpu 1 2 3\nbtime 1767225600\nprocesses 9\n")
    booted = booted_at(tmp_path)
    assert booted == datetime(2026, 1, 1, tzinfo=UTC)
    before_boot = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert explain_lost(before_boot, booted).startswith("the machine restarted (it booted at")
    after_boot = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    assert explain_lost(after_boot, booted) == (
        "both were killed: the machine did not restart since the job's last record"
    )
    assert "unknown" in explain_lost(after_boot, booted_at(tmp_path / "none"))


# --- damaged job files ----------------------------------------------------------------------------


def _job(provider: LocalProvider, status: str = "succeeded") -> JobDir:
    """A finished job folder, as the worker leaves one (no worker alive)."""
    job_id = f"local-test-{status}"
    folder = JobDir(provider.home / "jobs" / job_id)
    folder.root.mkdir(parents=True)
    folder.write_job(
        LocalJobFile(
            id=job_id,
            created_at=utcnow(),
            idempotency_key="k",
            model=None,
            train_file="train.jsonl",
            grader={"type": "string_check", "name": "label"},
            hyperparameters={},
            grpo={},
            tiny=True,
            command=[sys.executable, "-c", "pass"],
        )
    )
    folder.append_event(kind="status", message="created", raw={"status": "pending"})
    folder.append_event(kind="status", message="running", raw={"status": "running"})
    folder.append_event(kind="metrics", message="step 1", metrics=StepMetrics(step=1))
    folder.append_event(kind="status", message=status, raw={"status": status, "step": 1})
    error = ErrorRecord(message="boom", code="worker_died") if status == "failed" else None
    folder.write_state(JobState(status=status, step=1, error=error))
    return folder


def _lines(folder: JobDir) -> list[bytes]:
    return folder.events_file.read_bytes().split(b"\n")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (b"this is not json", "line 3 is not a JSON event"),
        (b'{"kind": "metrics", "message": "\xff\xfe"}', "line 3 is not UTF-8 text"),
        (b'{"kind": "nonsense"}', "line 3 is not a JSON event"),
    ],
)
async def test_a_damaged_event_line_names_the_file_the_line_and_the_repair(
    tmp_path: Path, damage: bytes, problem: str
) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider)
    lines = _lines(folder)
    lines[2] = damage
    folder.events_file.write_bytes(b"\n".join(lines))
    with pytest.raises(ProviderError) as caught:
        await provider.list_events(folder.job_id)
    message = str(caught.value)
    assert str(folder.events_file) in message and problem in message
    assert f"python -m rlft.workers.repair {folder.root}" in message
    assert caught.value.code == "corrupt_job_file"  # type: ignore[attr-defined]

    done, left = await provider.repair_job(folder.job_id)
    assert left == [] and "replaced unreadable line(s) 3" in done[0]
    events = await provider.list_events(folder.job_id)
    assert [e.id for e in events] == ["00000001", "00000002", "00000003", "00000004"]
    assert events[2].level == "warning" and "was replaced by a repair" in events[2].message
    assert events[3].raw == {"status": "succeeded", "step": 1}  # later ids did not move
    backups = list(folder.root.glob("events.jsonl.damaged-*"))
    assert len(backups) == 1 and damage in backups[0].read_bytes()


async def test_a_cut_last_line_is_an_error_once_no_writer_is_alive(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider)
    with folder.events_file.open("ab") as fh:
        fh.write(b'{"at":"2026-01-01T00:00:00Z","kind":"mess')  # the crash cut the write
    with pytest.raises(ProviderError, match="line 5 is cut short"):
        await provider.list_events(folder.job_id)
    done, _ = await provider.repair_job(folder.job_id)
    assert "line(s) 5" in done[0]
    events = await provider.list_events(folder.job_id)
    assert len(events) == 5 and "was cut short" in events[-1].message


async def test_a_line_being_written_by_a_live_worker_is_left_for_the_next_read(
    tmp_path: Path,
) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider, status="running")
    with folder.events_file.open("ab") as fh:
        fh.write(b'{"at":"2026-01-01T00:00:00Z","kind":"mess')
    fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live worker holds the job's lock (flock: per open file)
    try:
        assert len(await provider.list_events(folder.job_id)) == 4
        with pytest.raises(UsageError, match="worker is running"):
            await provider.repair_job(folder.job_id)
        with folder.events_file.open("ab") as fh:
            fh.write(b'age","message":"done","level":"info"}\n')  # the write completes
        events = await provider.list_events(folder.job_id)
        assert len(events) == 5 and events[-1].message == "done"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(b"\x00\x01garbage", "is damaged"), (b'{"status": "runn', "is damaged"), (b"", "is damaged")],
)
async def test_a_damaged_state_file_is_named_and_rebuilt_from_the_events(
    tmp_path: Path, damage: bytes, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider)
    folder.state_file.write_bytes(damage)
    with pytest.raises(ProviderError) as caught:
        await provider.get_job(folder.job_id)
    message = str(caught.value)
    assert f"local job file {folder.state_file} {problem}" in message
    assert "rebuild it from the event log" in message and "rlft.workers.repair" in message
    with caplog.at_level(logging.WARNING, logger="rlft.local"):
        assert await provider.list_jobs() == []  # the damaged job is skipped, loudly
    assert str(folder.state_file) in caplog.text

    done, left = await provider.repair_job(folder.job_id)
    assert left == [] and "rebuilt from the event log as 'succeeded'" in done[0]
    record = await provider.get_job(folder.job_id)
    assert record.status is JobStatus.SUCCEEDED and record.raw and record.raw["step"] == 1
    assert [r.id for r in await provider.list_jobs()] == [folder.job_id]


async def test_invalid_utf8_in_the_state_file_and_a_damaged_job_file(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider, status="failed")
    folder.state_file.write_bytes(b'{"status": "\xff"}')
    with pytest.raises(ProviderError, match="state.json is damaged"):
        await provider.get_job(folder.job_id)
    folder.job_file.write_bytes(b"{garbage")
    done, left = await provider.repair_job(folder.job_id)
    assert any("rebuilt from the event log as 'failed'" in line for line in done)
    assert len(left) == 1 and "job.json" in left[0] and "cannot be rebuilt" in left[0]
    with pytest.raises(ProviderError, match="job.json is damaged.*restore it from a backup"):
        await provider.get_job(folder.job_id)


def test_the_repair_command_line(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider)
    folder.events_file.write_bytes(folder.events_file.read_bytes() + b"garbage\n")
    run = [sys.executable, "-m", "rlft.workers.repair", str(folder.root)]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "replaced unreadable line(s) 5" in done.stdout and "Traceback" not in done.stderr
    again = subprocess.run(run, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "nothing to repair" in again.stdout


# --- checkpoint seals -----------------------------------------------------------------------------


def _checkpoint(folder: JobDir, step: int, *, sealed: bool = True) -> Path:
    path = folder.output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w" * 1000)
    (path / "trainer_state.json").write_text("{}")
    if sealed:
        seal_checkpoint(path)
    return path


async def test_only_sealed_intact_checkpoints_are_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider(tmp_path)
    folder = _job(provider)
    for step, sealed in ((2, True), (4, True), (6, False)):
        path = _checkpoint(folder, step, sealed=sealed)
        folder.append_event(
            kind="checkpoint", message=f"checkpoint {step}", raw={"step": step, "path": str(path)}
        )
    manifest = json.loads((folder.output_dir / "checkpoint-2" / CHECKPOINT_MANIFEST).read_text())
    assert manifest["files"] == {"model.safetensors": 1000, "trainer_state.json": 2}
    assert [step for step, _ in folder.checkpoint_dirs()] == [2, 4]
    assert "never completed" in (checkpoint_problem(folder.output_dir / "checkpoint-6") or "")

    weights = folder.output_dir / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(b"w" * 10)  # cut short by a crash or a full disk
    assert checkpoint_problem(weights.parent) == (
        "model.safetensors is 10 bytes, 1000 when saved (truncated)"
    )
    with caplog.at_level(logging.WARNING, logger="rlft.local"):
        checkpoints = await provider.list_checkpoints(folder.job_id)
    assert [c.step for c in checkpoints] == [2]
    assert "checkpoint-4: model.safetensors is 10 bytes" in caplog.text
    assert [step for step, _ in folder.checkpoint_dirs()] == [2]
    (weights.parent / "model.safetensors").unlink()
    assert checkpoint_problem(weights.parent) == "model.safetensors is missing"


# --- any damage: a clear error, then a repair that reads back -------------------------------------


def _damage(rng: random.Random, data: bytes) -> bytes:
    """One crash- or disk-like mutation of a file's bytes."""
    kind = rng.choice(["cut", "flip", "insert", "utf8", "zero", "drop-newline"])
    at = rng.randrange(len(data) + 1)
    if kind == "cut":
        return data[:at]
    if kind == "flip" and data:
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
    if kind == "insert":
        return (
            data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + data[at:]
        )
    if kind == "utf8":
        return data[:at] + b"\xc3\x28\xff" + data[at:]
    if kind == "zero":
        return data[:at] + b"\x00" * rng.randrange(1, 64) + data[at:]
    return data.replace(b"\n", b" ", 1)


def test_random_damage_gives_one_clear_error_and_repair_always_reads_back(tmp_path: Path) -> None:
    from rlft.workers.repair import repair

    rng = random.Random(20261203)
    provider = make_provider(tmp_path)
    folder = _job(provider)
    good_events, good_state = folder.events_file.read_bytes(), folder.state_file.read_bytes()
    for _ in range(300):
        events = _damage(rng, good_events)
        state = _damage(rng, good_state) if rng.random() < 0.5 else good_state
        folder.events_file.write_bytes(events)
        folder.state_file.write_bytes(state)
        for damaged in folder.root.glob("*.damaged-*"):
            damaged.unlink()
        for read in (
            lambda: provider._list_events(folder.job_id, 0),
            lambda: provider._record(folder),
        ):
            try:
                read()
            except ProviderError as exc:
                assert exc.code == "corrupt_job_file", exc  # type: ignore[attr-defined]
                assert str(folder.root) in str(exc) and "\n" not in str(exc)
        provider._cursors.clear()
        done, left = repair(folder)
        assert left == [], left
        read_back = provider._list_events(folder.job_id, 0)
        lines = folder.events_file.read_bytes().split(b"\n")[:-1]
        assert [int(e.id) for e in read_back] == [n for n, ln in enumerate(lines, 1) if ln.strip()]
        assert provider._record(folder).id == folder.job_id
        provider._cursors.clear()


async def test_a_job_that_fails_while_a_pause_waits_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A guard asks a local job to pause just as its worker stops it for grader errors: the
    # pause must not report "paused" for a job that failed.
    provider = make_provider(tmp_path, stop_timeout=600)
    folder = _job(provider, status="running")
    request = JobDir.request

    def worker_fails_when_asked(self: JobDir, action: Any) -> None:
        request(self, action)
        error = ErrorRecord(message="grader 'fail' failed on 100% of grades", code="grader_errors")
        self.write_state(JobState(status="failed", step=3, error=error))

    monkeypatch.setattr(JobDir, "request", worker_fails_when_asked)
    fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the worker is alive
    try:
        with pytest.raises(UsageError) as caught:
            await provider.pause_job(folder.job_id)
    finally:
        os.close(fd)
    assert str(caught.value) == (
        f"job {folder.job_id} failed before it could pause: grader 'fail' failed on 100% of grades"
    )
    assert folder.requested() is None  # no stale request for a later resume
