"""JobManager: bounded creates, list-based refresh, the watch stream, waits, cancels, pacing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from jobs_helpers import FlakyFake, VirtualClock, make_client, spec

import rlft
from rlft import JobStatus
from rlft._manager import JobManager, JobUpdate
from rlft._store import JobStore
from rlft.exceptions import RateLimitError, UsageError
from rlft.testing import FakeProvider

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _reset_flaky() -> None:
    FlakyFake.reset()


def calls(client: object) -> dict[str, int]:
    provider = client.provider  # type: ignore[attr-defined]
    assert isinstance(provider, FakeProvider)
    return provider.calls


async def collect(manager: JobManager, jobs: list, **kwargs: object) -> list[JobUpdate]:  # type: ignore[type-arg]
    seen = []
    with anyio.fail_after(20):
        async with manager.watch(jobs, **kwargs) as updates:  # type: ignore[arg-type]
            async for update in updates:
                seen.append(update)
    return seen


async def test_submit_checks_everything_before_any_upload(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db") as client:
        manager = JobManager(client=client)
        unlabelled = rlft.Dataset.from_records(
            [{"messages": [{"role": "user", "content": "hi"}], "category": "billing"}]
        )
        bad = spec().model_copy(update={"train": unlabelled})  # the grader reads item.label
        with pytest.raises(UsageError):
            await manager.submit([spec("ok"), bad])
        assert calls(client) == {} and manager.jobs == []
        assert client.provider.uploads == []  # type: ignore[attr-defined]


async def test_submit_bounds_create_concurrency_and_is_idempotent(tmp_path: Path) -> None:
    FlakyFake.overlap = 2  # the first create waits for a second: 2 in flight, never 3
    state = tmp_path / "state"
    async with make_client(
        tmp_path / "jobs.db", provider="flaky", settings={"state_dir": state}
    ) as client:
        manager = JobManager(client=client, create_concurrency=2)
        specs = [spec(f"sweep-{i}", epochs=i) for i in range(1, 7)]
        jobs = await manager.submit(specs)
        assert [j.record.name for j in jobs] == [f"sweep-{i}" for i in range(1, 7)]
        assert FlakyFake.most_creates_in_flight == 2
        again = await JobManager(client=client).submit(specs)  # a re-run of the sweep
        assert [j.id for j in again] == [j.id for j in jobs]
        assert len(await client.provider.list_jobs()) == 6


async def test_a_failed_create_does_not_stop_the_others(tmp_path: Path) -> None:
    FlakyFake.lose_next_create = True
    async with make_client(tmp_path / "jobs.db", provider="flaky") as client:
        manager = JobManager(client=client, create_concurrency=1)
        with pytest.raises(ExceptionGroup, match="1 of 3 jobs could not be created") as info:
            await manager.submit([spec("a"), spec("b"), spec("c")])
        assert len(info.value.exceptions) == 1
        assert len(manager.jobs) == 2


async def test_refresh_lists_once_instead_of_one_get_per_job(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"steps": 50}) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec(f"j{i}", epochs=i) for i in range(1, 21)])
        before = dict(calls(client))
        await manager.refresh(jobs)
        assert calls(client).get("list_jobs", 0) - before.get("list_jobs", 0) == 1
        assert calls(client).get("get_job", 0) == before.get("get_job", 0)
        assert {j.status for j in jobs} == {JobStatus.RUNNING}
        rows = await JobStore(path=tmp_path / "jobs.db").jobs()
        assert {r.status for r in rows} == {"running"}  # saved in one transaction


async def test_refresh_falls_back_to_gets_without_a_list_endpoint(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", provider="nolist") as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec(f"j{i}", epochs=i) for i in range(1, 6)])
        await manager.refresh(jobs)
        assert calls(client).get("get_job") == 5 and "list_jobs" not in calls(client)


async def test_watch_streams_every_status_and_event_once_in_order(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with make_client(db, settings={"steps": 4}) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        seen = await collect(manager, jobs)
        assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
        provider = client.provider
        for job in jobs:
            mine = [u for u in seen if u.job is job]
            assert mine[0].kind == "status" and mine[0].previous_status is None
            statuses = [u.status for u in mine if u.kind == "status"]
            assert statuses[-1] is JobStatus.SUCCEEDED
            events = [u.event.id for u in mine if u.kind == "event" and u.event]
            remote = [e.id for e in await provider.list_events(job.id)]
            assert events == remote  # every event, once, in order
            log = await JobStore(path=db).events(job.local_id or "")
            assert [e.id for e in log] == remote
            steps = [u.event.metrics.step for u in mine if u.event and u.event.metrics]
            assert steps == [1, 2, 3, 4]


async def test_watch_resumes_after_the_saved_cursor(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    state = tmp_path / "state"
    async with make_client(db, settings={"state_dir": state, "steps": 3}) as client:
        (job,) = await JobManager(client=client).submit([spec()])
        first = await collect(JobManager(client=client), [job])
    async with make_client(db, settings={"state_dir": state}) as client:
        manager = JobManager(client=client)
        (again,) = await manager.attach([job.local_id or ""])
        second = await collect(manager, [again])
        assert [u.kind for u in second] == ["status"]  # nothing new: no event twice
        replay = await collect(JobManager(client=client), [again], after={again.id: None})
        replayed = [u.event.id for u in replay if u.event]
        assert replayed == [u.event.id for u in first if u.event]
        assert all(u.replayed for u in replay if u.event)


async def test_wait_all_without_guards_reads_no_events(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"steps": 3}) as client:
        manager = JobManager(client=client, guards=[])
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        done = await manager.wait_all(timeout=20)
        assert done == jobs and {j.status for j in jobs} == {JobStatus.SUCCEEDED}
        assert "list_events" not in calls(client) and "get_job" not in calls(client)


async def test_failed_jobs_are_returned_not_raised(tmp_path: Path) -> None:
    async with make_client(
        tmp_path / "jobs.db", settings={"steps": 5, "fail_at_step": 2}
    ) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec("a")])
        await manager.wait_all(timeout=20)
        assert jobs[0].status is JobStatus.FAILED and jobs[0].error is not None


async def test_timeouts_and_early_exits_never_cancel_remote_jobs(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"steps": 100_000}) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        with pytest.raises(TimeoutError):
            await manager.wait_all(timeout=0.1)
        async with manager.watch() as updates:
            async for update in updates:
                if update.kind == "event":
                    break  # leave early
        with anyio.move_on_after(0.05):
            await manager.wait_all()
        assert "cancel_job" not in calls(client)
        await manager.refresh()
        assert {j.status for j in jobs} == {JobStatus.RUNNING}
        await manager.cancel_all()
        assert {j.status for j in jobs} == {JobStatus.CANCELLED}
        assert calls(client)["cancel_job"] == 2


async def test_one_poller_per_provider_across_providers(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    async with make_client(db, settings={"steps": 3}) as client:
        manager = JobManager(client=client)
        ours = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        theirs = await manager.submit([spec("c", epochs=1), spec("d", epochs=2)], provider="fake2")
        await manager.wait_all(timeout=20)
        assert {j.provider for j in theirs} == {"fake2"}
        assert {j.status for j in ours + theirs} == {JobStatus.SUCCEEDED}
        other = client.provider_for("fake2")
        assert isinstance(other, FakeProvider) and "get_job" not in other.calls
        assert other.calls["list_jobs"] >= 2


async def test_retry_after_pauses_that_providers_polling(tmp_path: Path) -> None:
    FlakyFake.rate_limited_lists = 1
    FlakyFake.retry_after = 0.3
    clock = VirtualClock()  # what the manager scheduled, not how busy the machine was
    FlakyFake.clock = clock.now
    async with make_client(tmp_path / "jobs.db", provider="flaky", settings={"steps": 2}) as client:
        manager = JobManager(client=client, guards=[], poll_interval=0.001, clock=clock)
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        seen = await collect(manager, jobs, events=False)
        errors = [u for u in seen if u.kind == "error"]
        assert len(errors) == 1 and isinstance(errors[0].error, RateLimitError)
        assert errors[0].job is None  # a whole-provider poll failed, not one job
        gap = FlakyFake.list_times[1] - FlakyFake.list_times[0]
        assert gap == pytest.approx(0.3)  # waited out the Retry-After: no sooner, no longer
        assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}  # and carried on


async def test_rate_limits_space_out_calls(tmp_path: Path) -> None:
    # Measured on a virtual clock: the spacing the manager schedules, not the machine's speed.
    clock = VirtualClock()
    FlakyFake.clock = clock.now
    async with make_client(tmp_path / "jobs.db", provider="flaky", settings={"steps": 3}) as client:
        manager = JobManager(  # no guards: only status listings go through the gate
            client=client, guards=[], rate_limits={"flaky": 20.0}, poll_interval=0.001, clock=clock
        )
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        await manager.wait_all(jobs, timeout=20)
        assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
        times = FlakyFake.list_times
        assert len(times) >= 3
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) == pytest.approx(0.05)  # 20 per second, and no closer
        unpaced = VirtualClock()
        FlakyFake.list_times, FlakyFake.clock = [], unpaced.now
        free_manager = JobManager(client=client, guards=[], poll_interval=0.001, clock=unpaced)
        others = await free_manager.submit([spec("c", epochs=3), spec("d", epochs=4)])
        await free_manager.wait_all(others)
        free = FlakyFake.list_times
        assert max(b - a for a, b in zip(free, free[1:], strict=False)) < 0.01  # only the polls


async def test_a_job_deleted_remotely_is_reported_and_dropped(tmp_path: Path) -> None:
    async with make_client(
        tmp_path / "jobs.db", provider="nolist", settings={"steps": 3}
    ) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec("a", epochs=1), spec("b", epochs=2)])
        provider = client.provider
        assert isinstance(provider, FakeProvider)
        del provider._memory.jobs[jobs[0].id]
        seen = await collect(manager, jobs, events=False)
        errors = [u for u in seen if u.kind == "error"]
        assert [u.job for u in errors] == [jobs[0]]
        assert jobs[1].status is JobStatus.SUCCEEDED


async def test_an_error_in_the_watch_block_is_raised_as_is(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"steps": 100_000}) as client:
        manager = JobManager(client=client)
        jobs = await manager.submit([spec()])
        with pytest.raises(KeyError, match="consumer bug"):
            async with manager.watch(jobs) as updates:
                async for _ in updates:
                    raise KeyError("consumer bug")
        assert "cancel_job" not in calls(client)
