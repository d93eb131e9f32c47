"""The client and the store: every job recorded, reattach anywhere, idempotent create, uploads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from jobs_helpers import FlakyFake, make_client, rows, spec

from rlft import JobStatus
from rlft._store import JobStore
from rlft.exceptions import (
    HyperparameterError,
    ProviderConnectionError,
    UsageError,
)
from rlft.testing import FakeProvider

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _reset_flaky() -> None:
    FlakyFake.reset()


async def test_every_created_job_is_recorded(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"steps": 2}) as client:
        job = await client.jobs.create(spec=spec("triage"))
        assert job.local_id is not None and job.local_id.startswith("rlft-")
        row = await JobStore(path=tmp_path / "jobs.db").get(job.local_id)
        assert row is not None
        assert (row.provider, row.provider_job_id, row.name) == ("fake", job.id, "triage")
        assert row.spec_hash == spec("triage").content_hash()
        assert row.status == "pending"
        await job.wait(poll_interval=0.001)
        row = await JobStore(path=tmp_path / "jobs.db").get(job.local_id)
        assert row is not None and row.status == "succeeded"
        assert row.fine_tuned_model == job.fine_tuned_model


async def test_list_shows_jobs_across_providers_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with make_client(db) as first:
        one = await first.jobs.create(spec=spec("one"))
    async with make_client(db, provider="fake2") as second:
        two = await second.jobs.create(spec=spec("two"))
    async with make_client(db) as client:  # configured for "fake" only
        listed = await client.jobs.list()
        assert [(j.provider, j.local_id) for j in listed] == [
            ("fake2", two.local_id),
            ("fake", one.local_id),
        ]
        assert [j.local_id for j in await client.jobs.list(provider="fake2")] == [two.local_id]
        assert await client.jobs.list(status="succeeded") == []


async def test_get_reattaches_on_the_provider_the_job_lives_on(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    # Jobs that outlive the client, as a real backend's do; the endpoint is in rlft.toml.
    (project / "rlft.toml").write_text(
        f'provider = "fake2"\n[fake2]\nstate_dir = "{tmp_path / "state"}"\n'
    )
    async with make_client(db, provider="fake2", cwd=project) as creator:
        created = await creator.jobs.create(spec=spec("two"))
    # Another folder, another default provider: the stored job still finds its backend,
    # configured from the rlft.toml it was created under.
    async with make_client(db, cwd=elsewhere) as client:
        assert client.provider_name == "fake"
        for key in (created.local_id, created.id, (created.local_id or "")[:10]):
            job = await client.jobs.get(key)
            assert (job.provider, job.id, job.local_id) == ("fake2", created.id, created.local_id)
            assert job.status is not JobStatus.PENDING  # refreshed from its backend


async def test_get_by_an_unknown_backend_id_adopts_the_job(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with make_client(False, settings={"state_dir": state}) as unrecorded:
        outside = await unrecorded.jobs.create(spec=spec("outside"))
        assert outside.local_id is None
    async with make_client(tmp_path / "jobs.db", settings={"state_dir": state}) as client:
        job = await client.jobs.get(outside.id)
        assert job.local_id is not None
        assert [j.id for j in await client.jobs.list()] == [outside.id]


async def test_a_create_lost_in_a_timeout_is_found_by_retrying(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    state = tmp_path / "state"
    FlakyFake.lose_next_create = True
    async with make_client(db, provider="flaky", settings={"state_dir": state}) as client:
        with pytest.raises(ProviderConnectionError):
            await client.jobs.create(spec=spec("lost"))
    (pending,) = await JobStore(path=db).jobs()
    assert pending.creating  # recorded before the call, unconfirmed after it
    async with make_client(db, provider="flaky", settings={"state_dir": state}) as client:
        job = await client.jobs.create(spec=spec("lost"))  # the same spec: the same key
        provider = client.provider
        assert isinstance(provider, FakeProvider)
        remote = await provider.list_jobs()
    assert [r.id for r in remote] == [job.id]  # one paid job, not two
    (row,) = await JobStore(path=db).jobs()
    assert (row.local_id, row.provider_job_id) == (pending.local_id, job.id)


async def test_reconcile_finds_a_lost_create_without_the_spec(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    state = tmp_path / "state"
    FlakyFake.lose_next_create = True
    async with make_client(db, provider="flaky", settings={"state_dir": state}) as client:
        with pytest.raises(ProviderConnectionError):
            await client.jobs.create(spec=spec("lost"))
        assert await client.jobs.list() == []  # unconfirmed creates are not jobs yet
        assert await client.jobs.reconcile() == []
        (job,) = await client.jobs.list()
        assert job.provider == "flaky" and job.record.name == "lost"
        again = await client.jobs.get(job.local_id or "")
        assert again.id == job.id


async def test_an_unconfirmed_create_that_never_landed_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    store = JobStore(path=db)
    row = await store.begin_create(
        provider="fake",
        scope="s",
        idempotency_key="never-sent",
        spec_hash=None,
        name=None,
        labels={},
        model=None,
    )
    async with make_client(db) as client:
        assert [r.local_id for r in await client.jobs.reconcile()] == [row.local_id]
        with pytest.raises(UsageError, match="run the same job again"):
            await client.jobs.get(row.local_id)


async def test_a_refused_create_leaves_no_record(tmp_path: Path) -> None:
    class Refusing(FakeProvider):
        async def create_job(self, request):  # type: ignore[no-untyped-def]
            raise HyperparameterError(provider="fake", name="epochs", value=99, allowed="1-50")

    async with make_client(tmp_path / "jobs.db") as client:
        client._provider = Refusing(settings=client.provider.settings)
        with pytest.raises(HyperparameterError):
            await client.jobs.create(spec=spec())
    assert await JobStore(path=tmp_path / "jobs.db").jobs() == []


async def test_uploads_are_remembered_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with make_client(db) as first:
        await first.jobs.create(spec=spec("a"))
        provider = first.provider
        assert isinstance(provider, FakeProvider) and len(provider.uploads) == 1
    async with make_client(db) as second:  # a new process: new client, new provider
        await second.jobs.create(spec=spec("b"))  # same training set, another job
        provider = second.provider
        assert isinstance(provider, FakeProvider) and provider.uploads == []
        await second.jobs.create(spec=spec("c", n=9))  # new content: uploaded
        assert len(provider.uploads) == 1
    async with make_client(db, settings={"steps": 7}) as other_endpoint:
        await other_endpoint.jobs.create(spec=spec("d"))  # another scope: not reused
        provider = other_endpoint.provider
        assert isinstance(provider, FakeProvider) and len(provider.uploads) == 1


async def test_a_sweep_uploads_a_shared_training_set_once(tmp_path: Path) -> None:
    import anyio

    async with make_client(tmp_path / "jobs.db") as client:
        async with anyio.create_task_group() as tg:
            for epochs in (1, 2, 3, 4):
                tg.start_soon(lambda e=epochs: client.jobs.create(spec=spec(epochs=e)))
        provider = client.provider
        assert isinstance(provider, FakeProvider) and len(provider.uploads) == 1
        assert len(await client.jobs.list()) == 4


async def test_no_secret_reaches_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-canary-0123456789-do-not-store"
    monkeypatch.setenv("RLFT_FAKE_API_KEY", canary)
    db = tmp_path / "jobs.db"
    async with make_client(db, settings={"steps": 3, "fail_at_step": 2}) as client:
        assert client.provider.settings.api_key.get_secret_value() == canary  # type: ignore[attr-defined]
        job = await client.jobs.create(spec=spec("canary"), idempotency_key="k")
        from rlft._manager import JobManager

        await JobManager(client=client).wait_all([job])
        assert job.status is JobStatus.FAILED  # a failure path ran too
        client.store.close()  # type: ignore[union-attr]
    assert canary.encode() not in _store_bytes(tmp_path)
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert canary not in dump and "fakejob-0001" in dump


async def test_store_false_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RLFT_HOME", str(tmp_path / "home"))
    async with make_client(False) as client:
        job = await client.jobs.create(train=rows(), grader=spec().grader)
        assert job.local_id is None and client.store is None
        assert [j.id for j in await client.jobs.list()] == [job.id]  # the backend's listing
    assert not (tmp_path / "home").exists()


def _store_bytes(folder: Path) -> bytes:
    """Every byte of the database, its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in folder.rglob("jobs.db*"))
