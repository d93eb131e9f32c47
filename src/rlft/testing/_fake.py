"""FakeProvider: an in-memory backend with a deterministic lifecycle, for tests and dry runs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from rlft._models import (
    Capabilities,
    Checkpoint,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    StepMetrics,
)
from rlft.exceptions import NotFoundError, UsageError
from rlft.provider import DatasetRole, Provider, ProviderSettings

if TYPE_CHECKING:
    from rlft._spec import CreateJobRequest
    from rlft.datasets import Dataset

__all__ = ["FakeProvider", "FakeSettings"]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeSettings(ProviderSettings):
    """Settings of the fake backend. Every field shapes the scripted lifecycle."""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {"api_key": "RLFT_FAKE_API_KEY"}

    steps: int = Field(default=4, ge=1)
    """Training steps before the job succeeds; each ``get_job`` advances one."""
    checkpoint_every: int = Field(default=2, ge=1)
    fail_at_step: int | None = None
    """Fail the job when it reaches this step."""
    reward_start: float = 0.1
    reward_end: float = 0.9
    completions: tuple[str, ...] = ("billing",)
    """What ``generate`` answers, cycled over the prompts (for preflight tests)."""
    api_key: SecretStr | None = None
    """Not used for anything: it lets tests check that secrets stay masked."""


@dataclass
class _FakeJob:
    record: JobRecord
    key: str
    step: int = 0
    events: list[JobEvent] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)


class FakeProvider(Provider):
    """An in-memory backend: pending -> running (one step per poll) -> succeeded.

    Deterministic: rewards rise linearly from ``reward_start`` to ``reward_end``, a checkpoint
    every ``checkpoint_every`` steps, a failure at ``fail_at_step``. Pause, resume and cancel
    work. ``uploads`` counts uploads, so tests can check content-hash staging.
    """

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause=True,
        resume=True,
        cancel=True,
        deploy=True,
        list_jobs=True,
        inference=True,
        remote_graders=True,
        poll_interval=0.001,
        grader_target="local",
        dataset_target="local",
    )

    def __init__(self, *, settings: ProviderSettings) -> None:
        if not isinstance(settings, FakeSettings):
            settings = FakeSettings.model_validate(settings.model_dump())
        super().__init__(settings=settings)
        self.settings: FakeSettings = settings
        self._jobs: dict[str, _FakeJob] = {}
        self._ids = itertools.count(1)
        self.uploads: list[tuple[str, DatasetRole]] = []
        self.closed = 0

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        self.uploads.append((dataset.content_hash, role))
        return f"fake-file-{dataset.content_hash[:12]}"

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        for job in self._jobs.values():
            if job.key == request.idempotency_key:
                return job.record
        number = next(self._ids)
        job_id = f"fakejob-{number:04d}"
        record = JobRecord(
            id=job_id,
            provider=self.name,
            status=JobStatus.PENDING,
            provider_status="pending",
            model=request.spec.model or "fake-model",
            name=request.spec.name,
            created_at=_EPOCH + timedelta(minutes=number),
            metadata=dict(request.spec.labels),
        )
        job = _FakeJob(record=record, key=request.idempotency_key)
        self._jobs[job_id] = job
        self._event(job, "status", f"job created from {request.training_file}")
        return record

    async def get_job(self, job_id: str) -> JobRecord:
        job = self._job(job_id)
        self._advance(job)
        return job.record

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        return [job.record for job in reversed(self._jobs.values())][:limit]

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        events = self._job(job_id).events
        if after is None:
            return list(events)
        index = next((i for i, event in enumerate(events) if event.id == after), None)
        return list(events[index + 1 :]) if index is not None else list(events)

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        return list(self._job(job_id).checkpoints)

    async def pause_job(self, job_id: str) -> JobRecord:
        job = self._job(job_id)
        if job.record.status is not JobStatus.RUNNING:
            raise UsageError(f"job {job_id} is {job.record.status.value}; only running jobs pause")
        self._set(job, JobStatus.PAUSED)
        return job.record

    async def resume_job(self, job_id: str) -> JobRecord:
        job = self._job(job_id)
        if job.record.status is not JobStatus.PAUSED:
            raise UsageError(f"job {job_id} is {job.record.status.value}; only paused jobs resume")
        self._set(job, JobStatus.RUNNING)
        return job.record

    async def cancel_job(self, job_id: str) -> JobRecord:
        job = self._job(job_id)
        if not job.record.status.is_terminal:
            self._set(job, JobStatus.CANCELLED)
        return job.record

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        return f"fake-deployment-{name or checkpoint.id}"

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Answer each prompt with ``settings.completions`` in turn (deterministic)."""
        answers = self.settings.completions
        return [answers[i % len(answers)] for i in range(len(prompts))]

    async def validate_grader(self, payload: Any) -> None:
        from rlft.graders import compile as compile_grader

        compile_grader(payload, "local")

    async def run_grader(self, payload: Any, *, sample: str, item: Mapping[str, Any]) -> Any:
        return await payload.grade(sample, dict(item))

    async def aclose(self) -> None:
        self.closed += 1

    # --- the scripted lifecycle ---------------------------------------------------------------

    def _job(self, job_id: str) -> _FakeJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job {job_id!r}", provider=self.name, status_code=404) from None

    def _advance(self, job: _FakeJob) -> None:
        status = job.record.status
        if status is JobStatus.PENDING:
            self._set(job, JobStatus.RUNNING)
        elif status is JobStatus.RUNNING:
            job.step += 1
            self._step(job)

    def _step(self, job: _FakeJob) -> None:
        settings = self.settings
        if settings.fail_at_step is not None and job.step >= settings.fail_at_step:
            error = JobErrorInfo(
                message=f"scripted failure at step {job.step}", code="fake_failure"
            )
            self._set(job, JobStatus.FAILED, error=error)
            return
        progress = job.step / settings.steps
        reward = settings.reward_start + (settings.reward_end - settings.reward_start) * progress
        metrics = StepMetrics(
            step=job.step,
            total_steps=settings.steps,
            train_reward_mean=round(reward, 6),
            valid_reward_mean=round(reward - 0.05, 6),
        )
        self._event(job, "metrics", f"step {job.step}/{settings.steps}", metrics=metrics)
        if job.step % settings.checkpoint_every == 0 or job.step == settings.steps:
            checkpoint = Checkpoint(
                id=f"{job.record.id}-ckpt-{job.step}",
                job_id=job.record.id,
                step=job.step,
                model=f"fake:{job.record.id}:ckpt-step-{job.step}",
                metrics=metrics,
                created_at=self._now(job),
            )
            job.checkpoints.append(checkpoint)
            self._event(job, "checkpoint", f"checkpoint {checkpoint.id}")
        if job.step >= settings.steps:
            self._set(job, JobStatus.SUCCEEDED, fine_tuned_model=f"fake:{job.record.id}")

    def _set(self, job: _FakeJob, status: JobStatus, **changes: Any) -> None:
        finished = self._now(job) if status.is_terminal else None
        job.record = job.record.model_copy(
            update={"status": status, "provider_status": status.value, "finished_at": finished}
            | changes
        )
        level = "error" if status is JobStatus.FAILED else "info"
        self._event(job, "status", f"status {status.value}", level=level)

    def _event(self, job: _FakeJob, kind: Any, message: str, **fields: Any) -> None:
        number = len(job.events) + 1
        job.events.append(
            JobEvent(
                id=f"{job.record.id}-evt-{number:05d}",
                job_id=job.record.id,
                at=self._now(job),
                kind=kind,
                message=message,
                **fields,
            )
        )

    def _now(self, job: _FakeJob) -> datetime:
        created = job.record.created_at or _EPOCH
        return created + timedelta(seconds=len(job.events))
