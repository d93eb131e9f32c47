"""A damaged jobs.db: one clear line from every command and from the Client; `rlft jobs doctor`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from jobs_helpers import make_client
from test_jobs_cli import invoke, json_lines, project

from rlft._store import JobStore, StoreDamagedError, default_store_path
from rlft.testing import FakeProvider, FakeSettings


def truncate(db: Path) -> None:
    with db.open("r+b") as file:
        file.truncate(db.stat().st_size // 2)


def garbage_header(db: Path) -> None:
    with db.open("r+b") as file:
        file.write(b"this is not a database header" * 4)


def bad_rows(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE jobs SET status = 'runnning', labels = '{not' WHERE rowid = 1")
        conn.execute("UPDATE events SET body = 'garbage' WHERE seq = 2")
    conn.close()


def dropped_table(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE events")
    conn.close()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate,
    "garbage-header": garbage_header,
    "bad-rows": bad_rows,
    "dropped-table": dropped_table,
}


def stored_store(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Two finished jobs recorded by `rlft run`; returns the store, backend state and ids."""
    job_file = project(tmp_path / "p")
    ids = []
    for extra in ([], ["--again"]):
        result = invoke("run", job_file, "--no-preflight", "--json", *extra)
        assert result.exit_code == 0, result.output
        ids.append(json_lines(result)[-1]["local_id"])
    db = default_store_path()
    JobStore(path=db).close()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    return db, tmp_path / "p" / "state", ids


def remote_events(state: Path, job_id: str) -> list[str]:
    provider = FakeProvider(settings=FakeSettings(state_dir=state))
    return [e.id for e in anyio.run(lambda: provider.list_events(job_id))]


def one_clear_line(output: str, db: Path) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert str(db) in lines[0] and "rlft jobs doctor" in lines[0], lines[0]
    assert "Traceback" not in output


@pytest.mark.parametrize("damage", DAMAGE)
def test_every_jobs_command_and_the_client_give_one_clear_line(tmp_path: Path, damage: str) -> None:
    db, _, (local_id, _) = stored_store(tmp_path)
    DAMAGE[damage](db)
    commands = [
        ["jobs", "list"],
        ["jobs", "list", "--json"],
        ["jobs", "show", local_id],
        ["jobs", "events", local_id, "--stored"],
        ["jobs", "events", local_id],
        ["jobs", "checkpoints", local_id],
        ["jobs", "watch"],
        ["jobs", "watch", local_id],
        ["jobs", "cancel", local_id],
    ]
    for args in commands:
        result = invoke(*args)
        assert result.exit_code != 0, (args, result.output)
        one_clear_line(result.output, db)

    moved = tmp_path / "elsewhere" / "jobs.db"  # a store of its own: Client(store=path)
    moved.parent.mkdir()
    db.rename(moved)

    async def use() -> None:
        async with make_client(moved) as client:
            with pytest.raises(StoreDamagedError) as info:
                await client.jobs.list()
            message = str(info.value)
            assert "\n" not in message and str(moved) in message
            assert f"rlft jobs doctor --store {moved}" in message

    anyio.run(use)
    repaired = invoke("jobs", "doctor", "--store", moved)
    assert repaired.exit_code == 0 and "backed up the original" in repaired.output


@pytest.mark.parametrize("damage", DAMAGE)
def test_doctor_backs_up_repairs_and_the_lost_events_come_back(tmp_path: Path, damage: str) -> None:
    db, state, ids = stored_store(tmp_path)
    DAMAGE[damage](db)
    damaged = db.read_bytes()

    check = invoke("jobs", "doctor", "--check")
    assert check.exit_code == 1 and "problem:" in check.output
    assert db.read_bytes() == damaged  # --check changes nothing

    result = invoke("jobs", "doctor", "--json")
    assert result.exit_code == 0, result.output
    (report,) = json_lines(result)
    assert report["problems"] and report["repaired"]
    assert Path(report["backup"]).read_bytes() == damaged  # the original, byte for byte
    if damage == "bad-rows":
        quarantined = Path(report["quarantine"]).read_text().splitlines()
        assert any('"table": "jobs"' in line for line in quarantined)
    assert invoke("jobs", "list").exit_code == 0  # usable again
    again = invoke("jobs", "doctor")
    assert again.exit_code == 0 and "nothing to repair" in again.output

    kept = anyio.run(lambda: JobStore(path=db).jobs())
    if damage == "garbage-header":
        assert kept == []  # nothing readable: an empty store, the old file in the backup
        return
    assert kept, report
    watch = invoke("jobs", "watch", "--json")  # a default watch fetches what was lost
    assert watch.exit_code == 0, watch.output
    for row in anyio.run(lambda: JobStore(path=db).jobs()):
        assert row.settled
        events = anyio.run(JobStore(path=db).events, row.local_id)
        assert [e.id for e in events] == remote_events(state, row.provider_job_id or "")


def test_doctor_on_a_healthy_store_changes_nothing(tmp_path: Path) -> None:
    db, _, _ = stored_store(tmp_path)
    before = db.read_bytes()
    result = invoke("jobs", "doctor")
    assert result.exit_code == 0
    assert "ok: 2 jobs" in result.output and "nothing to repair" in result.output
    assert db.read_bytes() == before
    made = [p.name for p in db.parent.iterdir() if p.name.startswith("jobs.db.")]
    assert made == []  # no backup, no rebuild, no quarantine


def test_doctor_without_a_store_and_with_a_newer_schema(tmp_path: Path) -> None:
    result = invoke("jobs", "doctor")
    assert result.exit_code == 0 and "nothing to check" in result.output
    db = default_store_path()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    newer = invoke("jobs", "doctor")
    assert newer.exit_code == 1 and "upgrade rlft" in newer.output
    assert list(db.parent.glob("*.bak")) == []
