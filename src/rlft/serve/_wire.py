"""rlft's neutral nouns in OpenAI's fine-tuning shapes (jobs, events, checkpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rlft import Checkpoint, JobEvent, JobStatus, StepMetrics

__all__ = ["OWNER_LABEL", "checkpoint_wire", "event_wire", "job_wire", "metrics_data", "page"]

OWNER_LABEL = "serve_owner"
"""The job label holding the owning key's short id (never the key)."""

_STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSING: "running",
    # Outside the spec's enum, as OpenAI's own /pause answers it (reference/openai_azure.md §1.4).
    JobStatus.PAUSED: "paused",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
_LEVEL = {"debug": "info", "info": "info", "warning": "warn", "error": "error"}


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def openai_status(status: str) -> str:
    """A neutral status (or ``creating``) as OpenAI's word."""
    if status == "creating":
        return "validating_files"
    return _STATUS.get(JobStatus(status), "running")


def job_wire(row: Any, request: dict[str, Any] | None) -> dict[str, Any]:
    """A stored job (``rlft.StoredJob``) as OpenAI's ``fine_tuning.job``.

    Args:
        row: The job store's row.
        request: What the create asked for (files, method, seed), if it came through the server.
    """
    request = request or {}
    labels = {k: v for k, v in row.labels.items() if k != OWNER_LABEL}
    method = request.get("method") or {"type": "reinforcement"}
    params = (method.get("reinforcement") or {}).get("hyperparameters") or {}
    error = None
    if row.error is not None:
        error = {
            "code": row.error.code or "job_failed",
            "message": row.error.message,
            "param": row.error.param,
        }
    elif row.status == JobStatus.FAILED.value:
        error = {"code": "job_failed", "message": "the job failed", "param": None}
    return {
        "id": row.local_id,
        "object": "fine_tuning.job",
        "created_at": _ts(row.remote_created_at) or _ts(row.recorded_at) or 0,
        "error": error,
        "fine_tuned_model": row.fine_tuned_model,
        "finished_at": _ts(row.finished_at),
        "hyperparameters": {
            "n_epochs": params.get("n_epochs", "auto"),
            "batch_size": params.get("batch_size", "auto"),
            "learning_rate_multiplier": params.get("learning_rate_multiplier", "auto"),
        },
        "model": row.model or request.get("model") or "",
        "organization_id": "org-rlft",
        "result_files": [],
        "status": openai_status(row.status),
        "trained_tokens": None,
        "training_file": request.get("training_file") or "",
        "validation_file": request.get("validation_file"),
        "seed": int(request.get("seed") or 0),
        "estimated_finish": None,
        "integrations": [],
        "metadata": labels or None,
        "method": method,
        "user_provided_suffix": request.get("suffix"),
        # rlft's own: which backend runs it, and its id there (never a credential).
        "backend": row.provider,
        "backend_job_id": row.provider_job_id,
    }


def metrics_data(metrics: StepMetrics) -> dict[str, Any]:
    """``StepMetrics`` as the ``data`` of an OpenAI RFT metrics event."""
    graders = [
        {"name": name, "type": "grader", "train_reward_mean": value}
        for name, value in metrics.grader_rewards.items()
    ]
    scores: dict[str, Any] = {"graders": graders}
    if metrics.train_reward_mean is not None:
        scores["train_reward_mean"] = metrics.train_reward_mean
    if metrics.valid_reward_mean is not None:
        scores["valid_reward_mean"] = metrics.valid_reward_mean
    errors: dict[str, Any] = {"graders": []}
    if metrics.grader_error_rate is not None:
        errors["train_other_error_mean"] = metrics.grader_error_rate
    if metrics.parse_error_rate is not None:
        errors["train_sample_parse_error_mean"] = metrics.parse_error_rate
    data: dict[str, Any] = {
        "step": metrics.step,
        "total_steps": metrics.total_steps,
        "scores": scores,
        "errors": errors,
        "usage": {"graders": [], "samples": dict(metrics.tokens)},
    }
    # The flat names OpenAI's guide also prints.
    if metrics.train_reward_mean is not None:
        data["train_mean_reward"] = metrics.train_reward_mean
    if metrics.valid_reward_mean is not None:
        data["full_valid_mean_reward"] = metrics.valid_reward_mean
    if metrics.completion_length_mean is not None:
        data["completion_tokens_mean"] = metrics.completion_length_mean
    return data


def event_wire(event: JobEvent) -> dict[str, Any]:
    """A ``JobEvent`` as OpenAI's ``fine_tuning.job.event``."""
    metrics = event.kind == "metrics" and event.metrics is not None
    data: dict[str, Any] = {"kind": event.kind}
    if metrics and event.metrics is not None:
        data = metrics_data(event.metrics)
    return {
        "object": "fine_tuning.job.event",
        "id": event.id,
        "created_at": int(event.at.timestamp()),
        "level": _LEVEL.get(event.level, "info"),
        "message": event.message,
        "type": "metrics" if metrics else "message",
        "data": data,
    }


def checkpoint_wire(checkpoint: Checkpoint, job_id: str) -> dict[str, Any]:
    """A ``Checkpoint`` as OpenAI's ``fine_tuning.job.checkpoint`` (RFT metrics, free dict)."""
    m = checkpoint.metrics
    metrics: dict[str, float] = {}
    if checkpoint.step is not None:
        metrics["step"] = float(checkpoint.step)
    for key in ("train_reward_mean", "valid_reward_mean"):
        value = getattr(m, key)
        if value is not None:
            metrics[key] = float(value)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": _ts(checkpoint.created_at) or 0,
        "fine_tuned_model_checkpoint": checkpoint.model,
        "fine_tuning_job_id": job_id,
        "step_number": checkpoint.step or 0,
        "metrics": metrics,
    }


def page(items: list[dict[str, Any]], *, after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: the items after the one whose id is ``after``."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items)}
