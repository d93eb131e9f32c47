"""Bedrock job shapes -> neutral ``JobRecord``, ``JobEvent`` and ``Checkpoint``. Pure functions.

The native API exposes no event stream, reward curves or intermediate checkpoints
(reference/bedrock.md §3): events are synthesised from the job's fields (creation, the
``statusDetails`` phases, the status, the final losses, the failure message), each with a cursor
that sorts in the order things happen, and the one checkpoint is the output custom model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from rlft.openai_compat import to_step_metrics
from rlft.provider import (
    Checkpoint,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    StepMetrics,
    map_status,
)

__all__ = [
    "MANTLE_EXTRAS",
    "checkpoints",
    "events_after",
    "json_safe",
    "mantle_metrics",
    "record_from_job",
    "record_from_summary",
]

PROVIDER = "bedrock"


def json_safe(value: Any) -> JsonValue:
    """A boto3 response made JSON-safe (datetimes as ISO strings), for ``raw`` fields."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _lambda_arn(job: Mapping[str, Any]) -> str | None:
    rft = (job.get("customizationConfig") or {}).get("rftConfig") or {}
    arn = ((rft.get("graderConfig") or {}).get("lambdaGrader") or {}).get("lambdaArn")
    return str(arn) if arn else None


def record_from_job(job: Mapping[str, Any]) -> JobRecord:
    """A ``GetModelCustomizationJob`` response as a ``JobRecord`` (``id`` is the job ARN)."""
    native = str(job.get("status", "InProgress"))
    status = map_status(PROVIDER, native)
    metadata = {
        key: str(job[field])
        for key, field in (
            ("job_name", "jobName"),
            ("output_model_name", "outputModelName"),
            ("customization_type", "customizationType"),
            ("client_request_token", "clientRequestToken"),
        )
        if job.get(field)
    }
    lambda_arn = _lambda_arn(job)
    if lambda_arn:
        metadata["lambda_arn"] = lambda_arn
    error = None
    if status is JobStatus.FAILED:
        error = JobErrorInfo(message=str(job.get("failureMessage") or "the job failed"))
    return JobRecord(
        id=str(job["jobArn"]),
        provider=PROVIDER,
        status=status,
        provider_status=native,
        model=job.get("baseModelArn"),
        # Completed means the output model is ready to use (GetModelCustomizationJob docs).
        fine_tuned_model=job.get("outputModelArn") if status is JobStatus.SUCCEEDED else None,
        name=job.get("jobName"),
        created_at=_time(job.get("creationTime")),
        finished_at=_time(job.get("endTime")) if status.is_terminal else None,
        error=error,
        metadata=metadata,
        raw=json_safe(job),
    )


def record_from_summary(summary: Mapping[str, Any]) -> JobRecord:
    """A ``ModelCustomizationJobSummary`` (from the list paginator) as a ``JobRecord``."""
    native = str(summary.get("status", "InProgress"))
    status = map_status(PROVIDER, native)
    return JobRecord(
        id=str(summary["jobArn"]),
        provider=PROVIDER,
        status=status,
        provider_status=native,
        model=summary.get("baseModelArn"),
        fine_tuned_model=summary.get("customModelArn") if status is JobStatus.SUCCEEDED else None,
        name=summary.get("jobName"),
        created_at=_time(summary.get("creationTime")),
        finished_at=_time(summary.get("endTime")) if status.is_terminal else None,
        metadata={"job_name": str(summary.get("jobName", ""))},
        raw=json_safe(summary),
    )


# Cursor ranks: events sort by the number before the colon, in the order a job lives them.
_PHASES = (
    ("validationDetails", "validation"),
    ("dataProcessingDetails", "data processing"),
    ("trainingDetails", "training"),
)
_SUB_RANK = {"inprogress": 1, "stopping": 2, "completed": 3, "stopped": 3, "failed": 3}
_STATUS_RANK = {"inprogress": 5, "stopping": 50, "completed": 60, "stopped": 60, "failed": 60}


def _losses(job: Mapping[str, Any]) -> dict[str, float]:
    losses: dict[str, float] = {}
    training = (job.get("trainingMetrics") or {}).get("trainingLoss")
    if isinstance(training, int | float):
        losses["training_loss"] = float(training)
    for index, entry in enumerate(job.get("validationMetrics") or []):
        value = entry.get("validationLoss")
        if isinstance(value, int | float):
            key = "validation_loss" if index == 0 else f"validation_loss_{index}"
            losses[key] = float(value)
    return losses


def _events(job_id: str, job: Mapping[str, Any]) -> list[JobEvent]:
    created = _time(job.get("creationTime")) or dt.datetime.now(dt.UTC)
    modified = _time(job.get("lastModifiedTime")) or created
    native = str(job.get("status", "InProgress"))
    status = map_status(PROVIDER, native)
    events = [
        JobEvent(
            id="0:created",
            job_id=job_id,
            at=created,
            kind="message",
            message=f"job {job.get('jobName', job_id)} created",
        )
    ]
    details = job.get("statusDetails") or {}
    for index, (field, label) in enumerate(_PHASES):
        phase = details.get(field) or {}
        sub = str(phase.get("status", ""))
        rank = _SUB_RANK.get(sub.lower())
        if rank is None:  # NotStarted, or not reported (RFT may not fill these)
            continue
        events.append(
            JobEvent(
                id=f"{10 + 10 * index + rank}:{label.replace(' ', '-')}:{sub}",
                job_id=job_id,
                at=_time(phase.get("lastModifiedTime")) or modified,
                level="error" if sub.lower() == "failed" else "info",
                kind="message",
                message=f"{label}: {sub}",
            )
        )
    rank = _STATUS_RANK.get(native.lower(), 5)
    terminal_at = (_time(job.get("endTime")) or modified) if status.is_terminal else modified
    events.append(
        JobEvent(
            id=f"{rank}:status:{native}",
            job_id=job_id,
            at=terminal_at,
            kind="status",
            level="error" if status is JobStatus.FAILED else "info",
            message=f"status {native} ({status.value})",
            raw={"status": native},
        )
    )
    losses = _losses(job)
    if status.is_terminal and losses:  # the API reports only final losses, once done
        events.append(
            JobEvent(
                id="70:metrics:final",
                job_id=job_id,
                at=terminal_at,
                kind="metrics",
                message=", ".join(f"{k} {v:g}" for k, v in losses.items()),
                metrics=StepMetrics(extra=losses),
            )
        )
    if status is JobStatus.FAILED and job.get("failureMessage"):
        events.append(
            JobEvent(
                id="80:failure",
                job_id=job_id,
                at=terminal_at,
                level="error",
                kind="message",
                message=str(job["failureMessage"]),
            )
        )
    return sorted(events, key=lambda e: int(e.id.partition(":")[0]))


def events_after(job_id: str, job: Mapping[str, Any], after: str | None) -> list[JobEvent]:
    """The synthesised events of ``job`` that come after cursor ``after`` (all when ``None``)."""
    events = _events(job_id, job)
    if after is None:
        return events
    head = after.partition(":")[0]
    if not head.isdigit():
        return events  # a cursor we never issued: replay rather than lose events
    return [e for e in events if int(e.id.partition(":")[0]) > int(head)]


def checkpoints(job_id: str, job: Mapping[str, Any]) -> list[Checkpoint]:
    """The output custom model, once the job completed; Bedrock keeps no intermediate ones."""
    if map_status(PROVIDER, str(job.get("status", ""))) is not JobStatus.SUCCEEDED:
        return []
    model = job.get("outputModelArn")
    if not model:
        return []
    return [
        Checkpoint(
            id=str(model),
            job_id=job_id,
            model=str(model),
            metrics=StepMetrics(extra=_losses(job)),
            created_at=_time(job.get("endTime")),
            raw={"outputModelArn": str(model), "outputModelName": job.get("outputModelName")},
        )
    ]


# --- the OpenAI-compatible ("mantle") endpoint's metrics events ---------------------------------

MANTLE_EXTRAS = {
    "actor_entropy": "entropy",
    "actor_pg_loss": "loss",
    "actor_grad_norm": "grad_norm",
    "critic_advantages_mean": "advantages_mean",
}
"""Mantle's training-internals keys -> the ``StepMetrics.extra`` names the local TRL runner uses
for the same quantities (TRL logs ``entropy``, ``loss``, ``grad_norm``)."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def mantle_metrics(data: Mapping[str, Any]) -> StepMetrics:
    """A mantle metrics event's ``data`` as ``StepMetrics``.

    The endpoint reports verl-style keys, not OpenAI's ``scores`` (aws-samples/
    amazon-bedrock-samples, ``models/gpt-oss/gptoss_gsm8k_rft.ipynb``): ``critic_rewards_mean``
    is the batch's mean reward, ``response_length_mean`` the mean response length in tokens,
    and ``actor_*``/``critic_advantages_mean`` go to ``extra`` under neutral names. Any OpenAI
    keys the endpoint also sends keep their usual meaning (``to_step_metrics``); other numbers
    stay in ``extra`` under their own names.
    """
    base = to_step_metrics(data)
    extra = {k: v for k, v in base.extra.items() if k not in MANTLE_EXTRAS}
    extra.pop("critic_rewards_mean", None)
    extra.pop("response_length_mean", None)
    for key, name in MANTLE_EXTRAS.items():
        if (number := _number(data.get(key))) is not None:
            extra[name] = number
    reward = _number(data.get("critic_rewards_mean"))
    length = _number(data.get("response_length_mean"))
    return base.model_copy(
        update={
            "train_reward_mean": base.train_reward_mean if reward is None else reward,
            "completion_length_mean": base.completion_length_mean if length is None else length,
            "extra": extra,
        }
    )
