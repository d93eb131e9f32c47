from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import rlft
from rlft import JobStatus
from rlft.exceptions import (
    CapabilityError,
    DatasetValidationError,
    JobCancelledError,
    JobFailedError,
    UsageError,
)
from rlft.graders import StringCheck
from rlft.testing import FakeProvider, FakeSettings

pytestmark = pytest.mark.anyio

GRADER = StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)


def rows(n: int = 8, *, field: str = "label") -> rlft.Dataset:
    return rlft.Dataset.from_records(
        [
            {"messages": [{"role": "user", "content": f"ticket {i}"}], field: "billing"}
            for i in range(n)
        ]
    )


def fake_client(**settings: object) -> rlft.Client:
    return rlft.Client(provider="fake", autoload=False, settings=settings)


async def test_lifecycle_end_to_end() -> None:
    async with fake_client(steps=4, checkpoint_every=2) as client:
        job = await client.jobs.create(
            train=rows(), validation=rows(4), grader=GRADER, hyperparameters={"epochs": 2}
        )
        assert job.status is JobStatus.PENDING and job.provider == "fake"
        seen = [event async for event in job.events()]
        assert job.status is JobStatus.SUCCEEDED
        steps = [e.metrics.step for e in seen if e.kind == "metrics" and e.metrics]
        assert steps == [1, 2, 3, 4]
        rewards = [e.metrics.train_reward_mean for e in seen if e.metrics]
        assert rewards == sorted(rewards) and rewards[-1] == pytest.approx(0.9)
        assert len({e.id for e in seen}) == len(seen)
        checkpoints = await job.checkpoints()
        assert [c.step for c in checkpoints] == [2, 4]
        best = max(checkpoints, key=lambda c: c.metrics.valid_reward_mean or 0)
        assert best.step == 4
        assert job.raise_for_status() is job
        assert await job.deploy(best, name="prod") == "fake-deployment-prod"


async def test_events_resume_after_a_cursor_without_duplicates() -> None:
    async with fake_client(steps=3) as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        await job.wait(poll_interval=0.001)
        everything = [e.id async for e in job.events(follow=False)]
        tail = [e.id async for e in job.events(after=everything[2], follow=False)]
        assert tail == everything[3:]


async def test_identical_create_is_idempotent_and_uploads_once() -> None:
    async with fake_client() as client:
        first = await client.jobs.create(train=rows(), validation=rows(4), grader=GRADER)
        second = await client.jobs.create(train=rows(), validation=rows(4), grader=GRADER)
        assert second.id == first.id
        provider = client.provider
        assert isinstance(provider, FakeProvider)
        assert len(provider.uploads) == 2  # train + validation, each once
        third = await client.jobs.create(train=rows(), grader=GRADER, idempotency_key="again")
        assert third.id != first.id
        assert len(provider.uploads) == 2  # same content: no new upload


async def test_pause_resume_cancel() -> None:
    async with fake_client(steps=50) as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        await job.refresh()
        await job.refresh()
        assert job.status is JobStatus.RUNNING
        await job.pause()
        step_before = len(await job.checkpoints())
        await job.refresh()
        await job.refresh()
        assert job.status is JobStatus.PAUSED
        assert len(await job.checkpoints()) == step_before  # paused jobs don't advance
        await client.jobs.resume(job)
        assert job.status is JobStatus.RUNNING
        cancelled = await client.jobs.cancel(job.id)
        assert cancelled.status is JobStatus.CANCELLED
        with pytest.raises(JobCancelledError):
            cancelled.raise_for_status()


async def test_a_failed_job_is_data_until_you_opt_in() -> None:
    async with fake_client(steps=5, fail_at_step=2) as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        finished = await job.wait(poll_interval=0.001)
        assert finished.status is JobStatus.FAILED
        assert finished.error is not None and "step 2" in finished.error.message
        with pytest.raises(JobFailedError, match="scripted failure at step 2"):
            finished.raise_for_status()


async def test_wait_times_out_without_cancelling_the_job() -> None:
    async with fake_client(steps=10_000) as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        with pytest.raises(TimeoutError):
            await job.wait(timeout=0.05, poll_interval=0.001)
        assert (await job.refresh()).status is JobStatus.RUNNING


async def test_cancelling_a_wait_never_cancels_the_remote_job() -> None:
    async with fake_client(steps=10_000) as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        with anyio.move_on_after(0.05):
            await job.wait(poll_interval=0.001)
        assert (await job.refresh()).status is JobStatus.RUNNING


async def test_bad_data_is_refused_before_any_upload() -> None:
    async with fake_client() as client:
        with pytest.raises(DatasetValidationError) as info:
            await client.jobs.create(train=rows(field="category"), grader=GRADER)
        assert "label" in str(info.value)
        provider = client.provider
        assert isinstance(provider, FakeProvider) and provider.uploads == []


async def test_capabilities_are_checked_before_calling() -> None:
    class NoPause(FakeProvider):
        capabilities = FakeProvider.capabilities.model_copy(update={"pause_job": False})

    job = rlft.Job(
        provider=NoPause(settings=FakeSettings()),
        record=rlft.JobRecord(
            id="j", provider="fake", status=JobStatus.RUNNING, provider_status="running"
        ),
    )
    with pytest.raises(CapabilityError, match="does not support pause"):
        await job.pause()


async def test_result_downloads_need_their_flag(tmp_path: Path) -> None:
    job = rlft.Job(
        provider=FakeProvider(settings=FakeSettings()),  # declares no download_results
        record=rlft.JobRecord(
            id="j", provider="fake", status=JobStatus.SUCCEEDED, provider_status="succeeded"
        ),
    )
    with pytest.raises(CapabilityError, match="does not support result file downloads"):
        await job.download_results(tmp_path)


async def test_create_needs_data_and_grader() -> None:
    async with fake_client() as client:
        with pytest.raises(UsageError, match="train= and grader="):
            await client.jobs.create(train=rows())


async def test_graders_run_through_the_client() -> None:
    async with fake_client() as client:
        result = await client.graders.run(GRADER, sample="billing", item={"label": "billing"})
        assert result.score == 1.0
        await client.graders.validate(GRADER)


async def test_jobs_list_and_get() -> None:
    async with fake_client() as client:
        job = await client.jobs.create(train=rows(), grader=GRADER)
        listed = await client.jobs.list()
        assert [j.id for j in listed] == [job.id]
        again = await client.jobs.get(job.id)
        assert again.id == job.id
