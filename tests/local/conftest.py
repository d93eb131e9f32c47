"""Helpers for the local runner's tests: a provider in a temporary home, the quickstart spec."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

import rlft
from rlft._models import Hyperparameters, JobEvent, JobRecord
from rlft._spec import CreateJobRequest, JobSpec
from rlft.workers import WorkerProvider
from rlft_providers.local._provider import LocalProvider
from rlft_providers.local._settings import LocalSettings

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


def make_provider(home: Path, **settings: Any) -> LocalProvider:
    return LocalProvider(settings=LocalSettings(home=home, **settings))


def quickstart_spec(**hyperparameters: Any) -> JobSpec:
    """The quickstart's job, with hyperparameters changed as given."""
    spec = rlft.load_job_file(QUICKSTART / "job.toml")
    if hyperparameters:
        params = {**spec.hyperparameters.model_dump(exclude_defaults=True), **hyperparameters}
        spec = spec.model_copy(update={"hyperparameters": Hyperparameters(**params)})
    return spec


async def create(provider: WorkerProvider, spec: JobSpec, key: str | None = None) -> JobRecord:
    """What ``client.jobs.create`` does, minus the dataset rules: check, upload, create."""
    provider.check_spec(spec)
    request = CreateJobRequest(
        spec=spec,
        grader_payload=None,
        training_file=await provider.upload_dataset(spec.train, role="train"),
        validation_file=await provider.upload_dataset(spec.validation, role="validation")
        if spec.validation is not None
        else None,
        idempotency_key=key or f"test-{time.monotonic_ns()}",
    )
    return await provider.create_job(request)


async def wait_until(
    provider: WorkerProvider,
    job_id: str,
    done: Callable[[JobRecord, list[JobEvent]], bool],
    *,
    timeout: float = 600,  # a bound for a failing test only: the wait is on the condition
) -> tuple[JobRecord, list[JobEvent]]:
    """Poll until ``done(record, events)``; fail the test with the job's log on timeout."""
    record = await provider.get_job(job_id)
    events = await provider.list_events(job_id)
    with anyio.move_on_after(timeout):
        while not done(record, events):
            await anyio.sleep(0.2)
            record = await provider.get_job(job_id)
            events = await provider.list_events(job_id)
        return record, events
    log = log_tail(record)
    raise AssertionError(f"timed out; job {record.status}, events: {events[-5:]}\nlog:\n{log}")


def log_tail(record: JobRecord) -> str:
    """The end of a job's worker log, for failure messages."""
    path = Path(str((record.raw or {}).get("log", "")))
    return path.read_text(errors="replace")[-3000:] if path.is_file() else ""


def metric_steps(events: list[JobEvent]) -> list[int]:
    return [e.metrics.step for e in events if e.kind == "metrics" and e.metrics and e.metrics.step]


def last_step(events: list[JobEvent]) -> int:
    steps = metric_steps(events)
    return steps[-1] if steps else 0


def rewards(events: list[JobEvent]) -> dict[int, float]:
    return {
        e.metrics.step: e.metrics.train_reward_mean
        for e in events
        if e.kind == "metrics"
        and e.metrics is not None
        and e.metrics.step is not None
        and e.metrics.train_reward_mean is not None
    }
