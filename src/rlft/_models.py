"""The neutral nouns every backend translates to: statuses, events, metrics, checkpoints."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from rlft._secrets import redact_value

__all__ = [
    "Capabilities",
    "Checkpoint",
    "EventKind",
    "EventLevel",
    "Hyperparameters",
    "JobErrorInfo",
    "JobEvent",
    "JobRecord",
    "JobStatus",
    "StepMetrics",
    "map_status",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobStatus(enum.StrEnum):
    """Where a job is in its life, in words every backend shares.

    The backend's own word is kept beside it as ``provider_status``; see ``map_status``.
    """

    PENDING = "pending"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change: succeeded, failed or cancelled."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def map_status(
    provider: str,
    native: str,
    *,
    default: JobStatus = JobStatus.RUNNING,
    table: Mapping[str, JobStatus] | None = None,
) -> JobStatus:
    """Translate a backend's status word to a ``JobStatus``.

    Each backend declares its own words in ``ProviderSpec.statuses``; this reads the table of
    the provider id ``provider`` from the plugin registry. Lookups are case-insensitive. Unknown
    words never raise: they map to ``default`` (``running``, so a watcher keeps polling rather
    than giving up on a job that may still be billing), and the raw word stays in
    ``provider_status``. Neutral words map to themselves.

    Args:
        provider: The provider id whose declared words ``native`` is in.
        native: The status word as the backend sent it.
        default: What an unknown word maps to.
        table: A vocabulary to use instead of the registered one (lower-case words).
    """
    key = native.strip().lower()
    if table is None:
        from rlft._plugins import find_provider

        spec = find_provider(provider)
        table = spec.statuses if spec is not None else {}
    if key in table:
        return table[key]
    try:
        return JobStatus(key)
    except ValueError:
        return default


EventLevel = Literal["debug", "info", "warning", "error"]
EventKind = Literal["message", "metrics", "status", "checkpoint"]


class StepMetrics(_Frozen):
    """Training metrics at one step, normalised across backends. Missing values are ``None``."""

    step: int | None = None
    """The training step these metrics describe."""
    total_steps: int | None = None
    """How many steps the job will run, when the backend knows."""
    train_reward_mean: float | None = None
    """Mean grader reward on training samples at this step."""
    train_reward_std: float | None = None
    """Standard deviation of the training reward."""
    valid_reward_mean: float | None = None
    """Mean grader reward on the validation set, on evaluation steps."""
    grader_rewards: dict[str, float] = Field(default_factory=dict)
    """Per-grader mean reward (``{"label": 0.9, "why": 0.4}``) for multi graders."""
    parse_error_rate: float | None = None
    """Share of samples that could not be parsed (``output_json`` missing)."""
    grader_error_rate: float | None = None
    """Share of grades that failed closed (exceptions, timeouts, invalid variables)."""
    kl: float | None = None
    """KL divergence from the reference policy, where the backend reports it."""
    completion_length_mean: float | None = None
    """Mean completion length in tokens."""
    step_seconds: float | None = None
    """Wall time of this step."""
    tokens: dict[str, float] = Field(default_factory=dict)
    """Token usage: sampled reasoning/completion tokens and grader-model tokens, by name."""
    extra: dict[str, float] = Field(default_factory=dict)
    """Every other numeric metric the backend reported, under its own name."""


class JobEvent(_Frozen):
    """One thing that happened to a job, in order. ``id`` is the cursor to resume after."""

    id: str
    """Stable, unique within the job; ``events(after=id)`` resumes after it."""
    job_id: str
    at: datetime = Field(default_factory=utcnow)
    level: EventLevel = "info"
    kind: EventKind = "message"
    message: str = ""
    metrics: StepMetrics | None = None
    """Set when ``kind == "metrics"``."""
    raw: dict[str, JsonValue] | None = None
    """The event as the backend sent it, for what the neutral fields don't carry."""

    @field_validator("level", mode="before")
    @classmethod
    def _normalise_level(cls, value: Any) -> Any:
        # OpenAI says "warn", Azure says "warning" (reference/openai_azure.md §5.7).
        return {"warn": "warning", "err": "error"}.get(value, value)

    @field_validator("message", "raw", mode="after")
    @classmethod
    def _mask_secrets(cls, value: Any) -> Any:
        return redact_value(value)  # a backend may echo a key into an event (docs/security.md)


class Checkpoint(_Frozen):
    """A saved model from a job: what you call for inference or deploy.

    ``model`` is an ``ft:`` model name (OpenAI/Azure), a custom-model ARN (Bedrock) or a local
    folder loadable with ``transformers`` (local).
    """

    id: str
    job_id: str
    step: int | None = None
    model: str
    metrics: StepMetrics = Field(default_factory=StepMetrics)
    created_at: datetime | None = None
    raw: dict[str, JsonValue] | None = None


class JobErrorInfo(_Frozen):
    """Why a job failed, as the backend put it."""

    message: str
    code: str | None = None
    param: str | None = None

    @field_validator("message", "code", "param", mode="after")
    @classmethod
    def _mask_secrets(cls, value: Any) -> Any:
        return redact_value(value)  # a backend may echo a key into its error (docs/security.md)


class JobRecord(_Frozen):
    """One snapshot of a job as its backend reported it: what ``Provider`` methods return."""

    id: str
    """The backend's job id (an ``ftjob-`` id, a Bedrock ARN, a local job id)."""
    provider: str
    status: JobStatus
    provider_status: str
    """The backend's own status word, untouched."""
    model: str | None = None
    """The base model."""
    fine_tuned_model: str | None = None
    """The final model, once the job succeeded."""
    name: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobErrorInfo | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    raw: dict[str, JsonValue] | None = None

    @field_validator("raw", mode="after")
    @classmethod
    def _mask_secrets(cls, value: Any) -> Any:
        return redact_value(value)


ReasoningEffort = Literal["default", "low", "medium", "high"]


class Hyperparameters(_Frozen):
    """Training settings in neutral names. Each provider maps and range-checks them before upload.

    ``None`` means "the backend's default". ``provider_options`` pass through untouched to the
    backend (``GRPOConfig`` fields for local, raw API fields for hosted backends).
    """

    epochs: int | None = Field(default=None, ge=1)
    """Passes over the training set (OpenAI ``n_epochs``, Bedrock ``epochCount``)."""
    batch_size: int | None = Field(default=None, ge=1)
    """Prompts per training step."""
    learning_rate_multiplier: float | None = Field(default=None, gt=0)
    """Hosted backends: a multiplier on the service's base rate."""
    learning_rate: float | None = Field(default=None, gt=0)
    """An absolute learning rate (local, Bedrock ``learningRate``)."""
    samples_per_prompt: int | None = Field(default=None, ge=1)
    """Completions sampled per prompt (TRL ``num_generations``, Bedrock
    ``trainingSamplePerPrompt``)."""
    max_completion_tokens: int | None = Field(default=None, ge=1)
    """Longest completion sampled during training."""
    eval_interval: int | None = Field(default=None, ge=1)
    """Steps between validation passes."""
    eval_samples: int | None = Field(default=None, ge=1)
    """Samples per validation prompt."""
    reasoning_effort: ReasoningEffort | None = None
    compute_multiplier: float | None = Field(default=None, gt=0)
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many steps (local)."""
    provider_options: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific settings, passed through untouched."""


class Capabilities(_Frozen):
    """What a provider can do. Each flag is named after the optional ``Provider`` method it
    allows; the client checks the flag before calling the method."""

    list_jobs: bool = False
    """``list_jobs``: many jobs in one call (the job manager refreshes statuses through it)."""
    list_events: bool = True
    """``list_events``: the job's events, after a cursor."""
    list_checkpoints: bool = True
    """``list_checkpoints``: the job's saved checkpoints."""
    pause_job: bool = False
    """``pause_job``: pause, keeping a resumable checkpoint."""
    resume_job: bool = False
    """``resume_job``: resume a paused job."""
    cancel_job: bool = True
    """``cancel_job``: cancel a job."""
    deploy_checkpoint: bool = False
    """``deploy_checkpoint``: make a checkpoint callable for inference (``job.deploy``)."""
    generate: bool = False
    """``generate``: sample the base model, for preflight checks."""
    download_results: bool = False
    """``download_results``: download the job's result files."""
    validate_grader: bool = False
    """``validate_grader``: the backend validates a compiled grader."""
    run_grader: bool = False
    """``run_grader``: the backend scores one sample with a compiled grader."""
    requires_validation_set: bool = False
    poll_interval: float = Field(default=10.0, gt=0)
    """Seconds between status polls that suit this backend (local jobs: well under a second)."""
