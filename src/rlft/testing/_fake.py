"""FakeProvider: a backend with a deterministic lifecycle, for tests and dry runs.

Jobs live in memory, or with ``FakeSettings(state_dir=...)`` in a JSON file that outlives the
process, so a watcher killed mid-run and restarted finds its jobs where they were.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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

__all__ = ["IDEMPOTENCY_METADATA_KEY", "FakeProvider", "FakeSettings", "FakeStep"]

T = TypeVar("T")

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
IDEMPOTENCY_METADATA_KEY = "rlft_idempotency_key"
"""The metadata key a fake job carries its idempotency key under (as OpenAI jobs do)."""


class FakeStep(BaseModel):
    """One scripted training step: the metrics it reports, and how long it stalls first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train_reward_mean: float | None = None
    valid_reward_mean: float | None = None
    step_seconds: float | None = None
    """Reported wall time of the step (what a budget guard bills)."""
    tokens: dict[str, float] = Field(default_factory=dict)
    """Token usage of the step by name (``model_graders/<model>/train_prompt_tokens``)."""
    stall: int = Field(default=0, ge=0)
    """Polls that see no progress before this step happens (a stalled job)."""


class FakeSettings(ProviderSettings):
    """Settings of the fake backend. Every field shapes the scripted lifecycle."""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {"api_key": "RLFT_FAKE_API_KEY"}

    steps: int = Field(default=4, ge=1)
    """Training steps before the job succeeds; each poll (``get_job``, ``list_jobs``) advances
    one."""
    checkpoint_every: int = Field(default=2, ge=1)
    fail_at_step: int | None = None
    """Fail the job when it reaches this step."""
    reward_start: float = 0.1
    reward_end: float = 0.9
    script: tuple[FakeStep, ...] = ()
    """Scripted steps; when given, ``steps`` is ``len(script)`` and rewards come from here."""
    completions: tuple[str, ...] = ("billing",)
    """What ``generate`` answers, cycled over the prompts (for preflight tests)."""
    state_dir: Path | None = None
    """Keep jobs in ``state_dir/fake-jobs.json`` instead of memory, shared by processes."""
    ignore_idempotency: bool = False
    """Create a new job even for a known idempotency key, as a backend without keys does (the
    job store's create reservation is then all that prevents a second paid job)."""
    api_key: SecretStr | None = None
    """Not used for anything: it lets tests check that secrets stay masked."""


@dataclass
class _FakeJob:
    record: JobRecord
    key: str
    step: int = 0
    waited: int = 0
    events: list[JobEvent] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        return {
            "record": self.record.model_dump(mode="json"),
            "key": self.key,
            "step": self.step,
            "waited": self.waited,
            "events": [e.model_dump(mode="json") for e in self.events],
            "checkpoints": [c.model_dump(mode="json") for c in self.checkpoints],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> _FakeJob:
        return cls(
            record=JobRecord.model_validate(data["record"]),
            key=data["key"],
            step=data["step"],
            waited=data["waited"],
            events=[JobEvent.model_validate(e) for e in data["events"]],
            checkpoints=[Checkpoint.model_validate(c) for c in data["checkpoints"]],
        )


@dataclass
class _State:
    jobs: dict[str, _FakeJob] = field(default_factory=dict)
    next_id: int = 1


class FakeProvider(Provider):
    """A scripted backend: pending -> running (one step per poll) -> succeeded.

    Deterministic: rewards rise linearly from ``reward_start`` to ``reward_end`` (or follow
    ``script``), a checkpoint every ``checkpoint_every`` steps, a failure at ``fail_at_step``.
    Pause, resume and cancel work. ``uploads`` counts uploads, so tests can check content-hash
    staging; ``calls`` counts remote operations by name.
    """

    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        deploy_checkpoint=True,
        list_jobs=True,
        generate=True,
        validate_grader=True,
        run_grader=True,
        poll_interval=0.001,
    )

    def __init__(self, *, settings: ProviderSettings) -> None:
        if not isinstance(settings, FakeSettings):
            settings = FakeSettings.model_validate(settings.model_dump())
        super().__init__(settings=settings)
        self.settings: FakeSettings = settings
        self._memory = _State()
        self.uploads: list[tuple[str, DatasetRole]] = []
        self.calls: dict[str, int] = {}
        self.closed = 0

    # --- state: memory, or a locked JSON file shared by processes -----------------------------

    async def _op(self, name: str, fn: Callable[[_State], T]) -> T:
        self.calls[name] = self.calls.get(name, 0) + 1
        folder = self.settings.state_dir
        if folder is None:
            return fn(self._memory)
        return await anyio.to_thread.run_sync(_on_disk, folder, fn)

    # --- the contract -------------------------------------------------------------------------

    @property
    def _steps(self) -> int:
        return len(self.settings.script) or self.settings.steps

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        self.uploads.append((dataset.content_hash, role))
        return f"fake-file-{dataset.content_hash[:12]}"

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        def run(state: _State) -> JobRecord:
            for job in state.jobs.values():
                if job.key == request.idempotency_key and not self.settings.ignore_idempotency:
                    return job.record
            number = state.next_id
            state.next_id += 1
            job_id = f"fakejob-{number:04d}"
            record = JobRecord(
                id=job_id,
                provider=self.name,
                status=JobStatus.PENDING,
                provider_status="pending",
                model=request.spec.model or "fake-model",
                name=request.spec.name,
                created_at=_EPOCH + timedelta(minutes=number),
                metadata=dict(request.spec.labels)
                | {IDEMPOTENCY_METADATA_KEY: request.idempotency_key},
            )
            job = _FakeJob(record=record, key=request.idempotency_key)
            state.jobs[job_id] = job
            self._event(job, "status", f"job created from {request.training_file}")
            return record

        return await self._op("create_job", run)

    async def get_job(self, job_id: str) -> JobRecord:
        def run(state: _State) -> JobRecord:
            job = self._job(state, job_id)
            self._advance(job)
            return job.record

        return await self._op("get_job", run)

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        # A listing is a poll too: every listed job advances one step, as with get_job.
        def run(state: _State) -> list[JobRecord]:
            listed = list(reversed(state.jobs.values()))[:limit]
            for job in listed:
                self._advance(job)
            return [job.record for job in listed]

        return await self._op("list_jobs", run)

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        def run(state: _State) -> list[JobEvent]:
            events = self._job(state, job_id).events
            if after is None:
                return list(events)
            index = next((i for i, event in enumerate(events) if event.id == after), None)
            return list(events[index + 1 :]) if index is not None else list(events)

        return await self._op("list_events", run)

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        return await self._op(
            "list_checkpoints", lambda state: list(self._job(state, job_id).checkpoints)
        )

    async def pause_job(self, job_id: str) -> JobRecord:
        return await self._transition("pause_job", job_id, JobStatus.RUNNING, JobStatus.PAUSED)

    async def resume_job(self, job_id: str) -> JobRecord:
        return await self._transition("resume_job", job_id, JobStatus.PAUSED, JobStatus.RUNNING)

    async def _transition(
        self, operation: str, job_id: str, source: JobStatus, target: JobStatus
    ) -> JobRecord:
        def run(state: _State) -> JobRecord:
            job = self._job(state, job_id)
            if job.record.status is not source:
                raise UsageError(
                    f"job {job_id} is {job.record.status.value}; only {source.value} jobs can "
                    f"become {target.value}"
                )
            self._set(job, target)
            return job.record

        return await self._op(operation, run)

    async def cancel_job(self, job_id: str) -> JobRecord:
        def run(state: _State) -> JobRecord:
            job = self._job(state, job_id)
            if not job.record.status.is_terminal:
                self._set(job, JobStatus.CANCELLED)
            return job.record

        return await self._op("cancel_job", run)

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
        self.calls["generate"] = self.calls.get("generate", 0) + 1
        answers = self.settings.completions
        return [answers[i % len(answers)] for i in range(len(prompts))]

    async def validate_grader(self, payload: Any) -> None:
        from rlft.graders import compile as compile_grader

        compile_grader(payload, "neutral")

    async def run_grader(self, payload: Any, *, sample: str, item: Mapping[str, Any]) -> Any:
        return await payload.grade(sample, dict(item))

    async def aclose(self) -> None:
        self.closed += 1

    # --- the scripted lifecycle ---------------------------------------------------------------

    def _job(self, state: _State, job_id: str) -> _FakeJob:
        try:
            return state.jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job {job_id!r}", provider=self.name, status_code=404) from None

    def _advance(self, job: _FakeJob) -> None:
        status = job.record.status
        if status is JobStatus.PENDING:
            self._set(job, JobStatus.RUNNING)
        elif status is JobStatus.RUNNING:
            script = self.settings.script
            if script and job.step < len(script) and job.waited < script[job.step].stall:
                job.waited += 1  # a scripted stall: this poll sees no progress
                return
            job.waited = 0
            job.step += 1
            self._step(job)

    def _metrics(self, job: _FakeJob) -> StepMetrics:
        settings = self.settings
        if settings.script:
            scripted = settings.script[job.step - 1]
            return StepMetrics(
                step=job.step,
                total_steps=self._steps,
                train_reward_mean=scripted.train_reward_mean,
                valid_reward_mean=scripted.valid_reward_mean,
                step_seconds=scripted.step_seconds,
                tokens=dict(scripted.tokens),
            )
        progress = job.step / settings.steps
        reward = settings.reward_start + (settings.reward_end - settings.reward_start) * progress
        return StepMetrics(
            step=job.step,
            total_steps=settings.steps,
            train_reward_mean=round(reward, 6),
            valid_reward_mean=round(reward - 0.05, 6),
        )

    def _step(self, job: _FakeJob) -> None:
        settings = self.settings
        if settings.fail_at_step is not None and job.step >= settings.fail_at_step:
            error = JobErrorInfo(
                message=f"scripted failure at step {job.step}", code="fake_failure"
            )
            self._set(job, JobStatus.FAILED, error=error)
            return
        steps = self._steps
        metrics = self._metrics(job)
        self._event(job, "metrics", f"step {job.step}/{steps}", metrics=metrics)
        if job.step % settings.checkpoint_every == 0 or job.step == steps:
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
        if job.step >= steps:
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


def _on_disk(folder: Path, fn: Callable[[_State], T]) -> T:
    """Run ``fn`` on the state in ``folder`` under an exclusive lock, saving it atomically."""
    import fcntl  # POSIX only: imported here so `rlft.testing` still imports everywhere

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-jobs.json"
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS even when the process is killed
        state = _State()
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            state = _State(
                jobs={key: _FakeJob.load(job) for key, job in data["jobs"].items()},
                next_id=data["next_id"],
            )
        try:
            return fn(state)
        finally:
            # Written even when fn raised (a rejected pause changes nothing, so this is cheap);
            # replace() makes the write atomic, so a kill never leaves half a file.
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            payload = {
                "next_id": state.next_id,
                "jobs": {key: job.dump() for key, job in state.jobs.items()},
            }
            temporary.write_text(json.dumps(payload), encoding="utf-8")
            os.replace(temporary, path)
