"""The manager against the real OpenAI backend, over HTTP, on a loopback fake server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import rlft
from rlft import JobStatus
from rlft._manager import JobManager
from rlft._store import JobStore
from rlft.guards import RewardGapGuard
from rlft.testing import FakeFineTuningServer, LoopbackServer, default_conformance_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[Loopback]:
    """The one fake API, clock-driven, behind a real HTTP server on 127.0.0.1."""
    fake = FakeFineTuningServer(job_duration=0.8, total_steps=10, file_polls=0)
    with fake.serve() as running:
        yield Loopback(fake, running)


class Loopback:
    """The fake (its counters and seeding) and where it listens."""

    def __init__(self, fake: FakeFineTuningServer, running: LoopbackServer) -> None:
        self.url = running.url
        self.seed = fake.seed
        self.stats = fake.stats
        self.reset_stats = fake.reset_stats


def client(server: Loopback, db: Path) -> rlft.Client:
    return rlft.Client(
        provider="openai",
        autoload=False,
        settings={"base_url": server.url, "api_key": "sk-loopback-test", "max_retries": 0},
        store=db,
    )


async def test_one_listing_refreshes_many_jobs(server: Loopback, tmp_path: Path) -> None:
    server.seed(120, duration=(60, 60))
    async with client(server, tmp_path / "jobs.db") as openai:
        jobs = await openai.jobs.list(remote=True, limit=120)
        assert len(jobs) == 120
        manager = JobManager(client=openai)
        server.reset_stats()
        await manager.refresh(jobs)
        stats = server.stats()
        # 120 watched + 50 slack: two pages of 100 instead of 120 GETs.
        assert stats == {"total": 2, "GET /fine_tuning/jobs": 2}
        assert {job.status for job in jobs} == {JobStatus.RUNNING}


async def test_wait_all_over_http_costs_listings_not_gets(server: Loopback, tmp_path: Path) -> None:
    server.seed(30, duration=(0.2, 0.6))
    async with client(server, tmp_path / "jobs.db") as openai:
        jobs = await openai.jobs.list(remote=True, limit=30)
        manager = JobManager(client=openai, guards=[], poll_interval=0.05)
        server.reset_stats()
        await manager.wait_all(jobs, timeout=30)
        assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
        stats = server.stats()
        assert stats["total"] < 30  # fewer requests for the whole wait than one round of GETs
        # A GET only when a single job is left to poll (one request either way).
        assert stats.get("GET /fine_tuning/jobs/{id}", 0) < 10
        assert set(stats) <= {"total", "GET /fine_tuning/jobs", "GET /fine_tuning/jobs/{id}"}
        rows = await JobStore(path=tmp_path / "jobs.db").jobs()
        assert len(rows) == 30 and {row.status for row in rows} == {"succeeded"}


async def test_create_watch_and_guard_a_job_over_http(server: Loopback, tmp_path: Path) -> None:
    spec = default_conformance_spec().model_copy(update={"model": "o4-mini-2025-04-16"})
    async with client(server, tmp_path / "jobs.db") as openai:
        manager = JobManager(
            client=openai, poll_interval=0.05, guards=[RewardGapGuard(threshold=0.5)]
        )
        (job,) = await manager.submit([spec])
        (again,) = await JobManager(client=openai).submit([spec])  # idempotent over the wire
        assert again.id == job.id
        assert server.stats()["POST /fine_tuning/jobs"] == 1
        events = []
        async with manager.watch([job]) as updates:
            async for update in updates:
                if update.event is not None:
                    events.append(update.event)
        assert job.status is JobStatus.SUCCEEDED
        steps = [e.metrics.step for e in events if e.metrics is not None]
        assert steps == list(range(1, 11))
        assert [e.metrics.train_reward_mean for e in events if e.metrics][-1] == pytest.approx(0.8)
        log = await JobStore(path=tmp_path / "jobs.db").events(job.local_id or "")
        assert [e.id for e in log] == [e.id for e in events]
