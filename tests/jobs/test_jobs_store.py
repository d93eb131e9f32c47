"""The SQLite job store: schema, migrations, WAL, several processes, atomic event logs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from rlft._models import JobEvent, JobRecord, JobStatus, StepMetrics
from rlft._store import SCHEMA_VERSION, JobStore, default_store_path
from rlft.exceptions import ConfigurationError, UsageError

pytestmark = pytest.mark.anyio


def record(job_id: str, status: JobStatus = JobStatus.RUNNING, **fields: object) -> JobRecord:
    return JobRecord(
        id=job_id, provider="fake", status=status, provider_status=status.value, **fields
    )


def event(job_id: str, number: int) -> JobEvent:
    return JobEvent(
        id=f"{job_id}-e{number}",
        job_id=job_id,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="metrics",
        message=f"step {number}",
        metrics=StepMetrics(step=number, train_reward_mean=number / 10),
        raw={"secret_payload": "never stored"},
    )


async def begin(store: JobStore, key: str = "k1", provider: str = "fake") -> str:
    row = await store.begin_create(
        provider=provider,
        scope="s",
        idempotency_key=key,
        spec_hash="h" * 64,
        name="triage",
        labels={"team": "support"},
        model="m",
    )
    return row.local_id


async def test_default_path_is_in_rlft_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RLFT_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "jobs.db"
    store = JobStore()
    await store.jobs()
    assert (tmp_path / "home" / "jobs.db").is_file()
    store.close()


async def test_schema_is_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    await store.jobs()
    conn = sqlite3.connect(tmp_path / "jobs.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()


async def test_a_newer_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "jobs.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigurationError, match="upgrade rlft"):
        await JobStore(path=tmp_path / "jobs.db").jobs()


async def test_an_unwritable_location_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="RLFT_HOME"):
        await JobStore(path=blocker / "jobs.db").jobs()


async def test_create_lifecycle_and_retry_with_the_same_key(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    local_id = await begin(store)
    row = await store.get(local_id)
    assert row is not None and row.creating and row.status == "creating"
    assert row.labels == {"team": "support"} and row.provider_job_id is None
    # A retried create (same provider, scope and key) finds the same row, not a new one.
    assert await begin(store) == local_id
    done = await store.finish_create(local_id, record("job-1", created_at=datetime.now(UTC)))
    assert done.local_id == local_id and done.provider_job_id == "job-1"
    assert done.job_status is JobStatus.RUNNING and done.model == "m"
    assert [r.local_id for r in await store.jobs()] == [local_id]
    # A different key is a different job.
    assert await begin(store, key="k2") != local_id
    store.close()


async def test_abandon_only_forgets_unconfirmed_creates(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    pending = await begin(store, key="a")
    confirmed = await begin(store, key="b")
    await store.finish_create(confirmed, record("job-b"))
    await store.abandon_create(pending)
    await store.abandon_create(confirmed)
    assert [r.local_id for r in await store.jobs()] == [confirmed]
    store.close()


async def test_find_by_local_id_backend_id_and_prefix(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    local_id = await begin(store)
    await store.finish_create(local_id, record("ftjob-abc"))
    assert (await store.find(local_id)).provider_job_id == "ftjob-abc"  # type: ignore[union-attr]
    assert (await store.find("ftjob-abc")).local_id == local_id  # type: ignore[union-attr]
    assert (await store.find(local_id[:9])).local_id == local_id  # type: ignore[union-attr]
    assert await store.find("nothing-like-it") is None
    assert await store.find("rlft_%") is None  # LIKE wildcards are escaped
    other = await begin(store, key="k2", provider="fake2")
    await store.finish_create(other, record("ftjob-abc").model_copy(update={"provider": "fake2"}))
    with pytest.raises(UsageError, match="matches 2 jobs"):
        await store.find("ftjob-abc")
    assert (await store.find("ftjob-abc", provider="fake2")).local_id == other  # type: ignore[union-attr]
    store.close()


async def test_list_filters(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    a = await begin(store, key="a")
    b = await begin(store, key="b")
    await store.finish_create(a, record("job-a", JobStatus.SUCCEEDED))
    await store.finish_create(b, record("job-b", JobStatus.RUNNING))
    c = await store.adopt(record("job-c", name="adopted"), scope="s")
    assert c.labels == {}
    assert {r.local_id for r in await store.jobs(active=True)} == {b, c.local_id}
    assert [r.local_id for r in await store.jobs(active=False)] == [a]
    assert [r.local_id for r in await store.jobs(status="succeeded")] == [a]
    assert {r.local_id for r in await store.jobs(labels={"team": "support"})} == {a, b}
    assert len(await store.jobs(limit=1)) == 1
    store.close()


async def test_label_filters_run_in_sql_with_any_key_and_limit_after_filtering(
    tmp_path: Path,
) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    odd = {'a "quoted".key': "x", "$.path[0]": "y", "owner": "7"}
    wanted = []
    for index in range(6):
        labels = odd if index % 2 else {"owner": "8"}
        row = await store.begin_create(
            provider="fake",
            scope="s",
            idempotency_key=f"k{index}",
            spec_hash="h" * 64,
            name=None,
            labels=labels,
            model="m",
        )
        if index % 2:
            wanted.append(row.local_id)
    queries: list[str] = []
    conn = store._connect()
    conn.set_trace_callback(queries.append)
    found = await store.jobs(labels=odd, limit=2)
    assert [r.local_id for r in found] == wanted[::-1][:2]  # newest first, limit after the filter
    assert {r.local_id for r in await store.jobs(labels={"owner": "7"})} == set(wanted)
    assert await store.jobs(labels={"owner": "7", "$.path[0]": "z"}) == []
    assert any("json_each" in q and "LIMIT" in q for q in queries)  # filtered by SQLite
    store.close()


async def test_events_and_cursor_are_saved_together(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    local_id = await begin(store)
    await store.finish_create(local_id, record("job-1"))
    first = [event("job-1", n) for n in (1, 2, 3)]
    assert len(await store.record_events(local_id, first)) == 3
    row = await store.get(local_id)
    assert row is not None and row.event_cursor == "job-1-e3"
    # A backend serving an event twice: it is skipped, the cursor still moves.
    again = await store.record_events(local_id, [first[-1], event("job-1", 4)])
    assert len(again) == 1
    log = await store.events(local_id)
    assert [e.id for e in log] == ["job-1-e1", "job-1-e2", "job-1-e3", "job-1-e4"]
    assert log[0].raw is None  # the backend's raw payload never reaches the disk
    assert [e.id for e in await store.events(local_id, after="job-1-e2")] == [
        "job-1-e3",
        "job-1-e4",
    ]
    store.close()


async def test_a_failed_transaction_leaves_no_partial_log(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    local_id = await begin(store)
    await store.finish_create(local_id, record("job-1"))
    await store.record_events(local_id, [event("job-1", 1)])

    class Broken(JobEvent):
        def model_dump_json(self, **kwargs: object) -> str:  # type: ignore[override]
            raise RuntimeError("disk full")

    bad = Broken(id="job-1-e3", job_id="job-1", message="x")
    with pytest.raises(RuntimeError):
        await store.record_events(local_id, [event("job-1", 2), bad])
    row = await store.get(local_id)
    assert row is not None and row.event_cursor == "job-1-e1"
    assert [e.id for e in await store.events(local_id)] == ["job-1-e1"]
    store.close()


async def test_uploads_are_remembered_per_provider_and_scope(tmp_path: Path) -> None:
    store = JobStore(path=tmp_path / "jobs.db")
    await store.remember_upload(provider="p", scope="s1", content_hash="c", file_id="file-1")
    assert await store.upload_id(provider="p", scope="s1", content_hash="c") == "file-1"
    assert await store.upload_id(provider="p", scope="s2", content_hash="c") is None
    await store.forget_upload(provider="p", scope="s1", content_hash="c")
    assert await store.upload_id(provider="p", scope="s1", content_hash="c") is None
    store.close()


WRITER = textwrap.dedent(
    """
    import sys, anyio
    from rlft._models import JobRecord, JobStatus
    from rlft._store import JobStore

    async def main(path, name):
        store = JobStore(path=path)
        for i in range(40):
            row = await store.begin_create(provider="fake", scope="s", name=name, labels={},
                                           idempotency_key=f"{name}-{i}", spec_hash=None,
                                           model=None)
            await store.finish_create(row.local_id, JobRecord(id=f"{name}-{i}", provider="fake",
                status=JobStatus.RUNNING, provider_status="running"))
        store.close()

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    anyio.run(JobStore(path=path).jobs)  # migrated once; the writers race on rows, not schema
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), name])
        for name in ("alpha", "beta", "gamma")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    rows = anyio.run(JobStore(path=path).jobs)
    assert len(rows) == 120
    assert {r.provider_job_id for r in rows} == {
        f"{n}-{i}" for n in ("alpha", "beta", "gamma") for i in range(40)
    }


async def test_a_v1_store_migrates_and_keeps_old_finished_jobs_settled(tmp_path: Path) -> None:
    import sqlite3

    from rlft._store import _MIGRATIONS

    db = tmp_path / "jobs.db"
    conn = sqlite3.connect(db)
    conn.executescript(_MIGRATIONS[0])
    for local_id, status in (("rlft-000000000001", "succeeded"), ("rlft-000000000002", "running")):
        conn.execute(
            "INSERT INTO jobs (local_id, provider, scope, provider_job_id, status, recorded_at, "
            "updated_at) VALUES (?, 'fake', 's', ?, ?, '2026-01-01T00:00:00+00:00', "
            "'2026-01-01T00:00:00+00:00')",
            (local_id, f"job-{local_id[-1]}", status),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = JobStore(path=db)
    settled = {row.local_id: row.settled for row in await store.jobs()}
    assert settled == {"rlft-000000000001": True, "rlft-000000000002": False}
    assert [r.local_id for r in await store.jobs(settled=False)] == ["rlft-000000000002"]
