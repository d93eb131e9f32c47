"""OpenAI-compatible jobs, events and checkpoints -> rlft's neutral models.

Parsing is loose on purpose (reference/openai_azure.md must-do 8): event ``data`` and checkpoint
``metrics`` are free values, statuses are open strings, unknown fields are kept in ``raw``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rlft._models import (
    Checkpoint,
    EventLevel,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    StepMetrics,
    map_status,
)
from rlft.openai_compat._errors import malformed

if TYPE_CHECKING:
    from rlft.graders import GradeResult

__all__ = ["to_checkpoint", "to_event", "to_grade_result", "to_job", "to_step_metrics"]

_LEVELS: dict[str, EventLevel] = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",  # OpenAI
    "warning": "warning",  # Azure
    "error": "error",
}


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(*values: Any) -> float | None:
    for value in values:
        if (number := _num(value)) is not None:
            return number
    return None


def _require_id(payload: Any, what: str, provider: str) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        raise malformed(provider, what, payload)
    return payload


def to_job(payload: Any, *, provider: str, vocabulary: str | None = None) -> JobRecord:
    """A ``fine_tuning.job`` object as a ``JobRecord``.

    Args:
        payload: The job as the backend sent it.
        provider: The provider id the record carries.
        vocabulary: The ``map_status`` table for its status word; ``provider`` by default.
    """
    job = _require_id(payload, "a fine-tuning job", provider)
    native = str(job.get("status") or "unknown")
    error = job.get("error")
    info = None
    if isinstance(error, dict) and (error.get("message") or error.get("code")):
        info = JobErrorInfo(
            message=str(error.get("message") or error.get("code")),
            code=str(error["code"]) if error.get("code") else None,
            param=str(error["param"]) if error.get("param") else None,
        )
    metadata = job.get("metadata")
    return JobRecord(
        id=job["id"],
        provider=provider,
        status=map_status(vocabulary or provider, native),
        provider_status=native,
        model=_str(job.get("model")),
        fine_tuned_model=_str(job.get("fine_tuned_model")),
        name=_str(job.get("user_provided_suffix")) or _str(job.get("suffix")),
        created_at=_time(job.get("created_at")),
        finished_at=_time(job.get("finished_at")),
        error=info,
        metadata=(
            {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
        ),
        raw=job,
    )


def to_event(payload: Any, *, job_id: str, provider: str) -> JobEvent:
    """A ``fine_tuning.job.event`` as a ``JobEvent``; metrics events get ``StepMetrics``."""
    event = _require_id(payload, "a fine-tuning event", provider)
    data = event.get("data")
    is_metrics = event.get("type") == "metrics" and isinstance(data, dict)
    level = _LEVELS.get(str(event.get("level", "info")).lower(), "info")
    return JobEvent(
        id=event["id"],
        job_id=job_id,
        at=_time(event.get("created_at")) or datetime.now(UTC),
        level=level,
        kind="metrics" if is_metrics else "message",
        message=str(event.get("message") or ""),
        metrics=to_step_metrics(data) if is_metrics and isinstance(data, dict) else None,
        raw=event,
    )


def to_checkpoint(payload: Any, *, job_id: str, provider: str) -> Checkpoint:
    """A ``fine_tuning.job.checkpoint`` as a ``Checkpoint``; ``metrics`` stays whole in ``raw``."""
    checkpoint = _require_id(payload, "a checkpoint", provider)
    model = checkpoint.get("fine_tuned_model_checkpoint")
    if not isinstance(model, str) or not model:
        raise malformed(provider, "a checkpoint (no fine_tuned_model_checkpoint)", checkpoint)
    metrics = checkpoint.get("metrics")
    step = _int(checkpoint.get("step_number"))
    normalised = to_step_metrics(metrics) if isinstance(metrics, dict) else StepMetrics()
    if normalised.step is None and step is not None:
        normalised = normalised.model_copy(update={"step": step})
    return Checkpoint(
        id=checkpoint["id"],
        job_id=str(checkpoint.get("fine_tuning_job_id") or job_id),
        step=step if step is not None else normalised.step,
        model=model,
        metrics=normalised,
        created_at=_time(checkpoint.get("created_at")),
        raw=checkpoint,
    )


# --- metrics ----------------------------------------------------------------------------------

# Top-level keys of the metrics event that are consumed into named StepMetrics fields.
_CONSUMED = {
    "step",
    "total_steps",
    "scores",
    "errors",
    "usage",
    "model_graders_token_usage",
    "train_mean_reward",
    "train_reward_mean",
    "train_reward_std",
    "valid_reward_mean",
    "full_valid_mean_reward",
    "completion_tokens_mean",
}
_PARSE_ERRORS = ("train_sample_parse_error_mean",)


def _graders(section: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``[{"name": ..., ...}, ...]`` (OpenAI) or ``{"name": {...}}`` as ``(name, entry)`` pairs."""
    if isinstance(section, list):
        for index, entry in enumerate(section):
            if isinstance(entry, dict):
                yield str(entry.get("name") or index), entry
    elif isinstance(section, dict):
        for name, entry in section.items():
            if isinstance(entry, dict):
                yield str(name), entry


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if (number := _num(value)) is not None:
        out[prefix] = number
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}/{key}" if prefix else str(key), item, out)
    elif isinstance(value, list):
        for name, entry in _graders(value):
            _flatten(f"{prefix}/{name}", {k: v for k, v in entry.items() if k != "name"}, out)


def to_step_metrics(data: Mapping[str, Any]) -> StepMetrics:
    """Normalise the RFT metrics event ``data`` (reference/openai_azure.md §1.5).

    ``scores`` gives the rewards (with the older flat ``train_mean_reward`` /
    ``full_valid_mean_reward`` as fallbacks), ``errors.graders`` the parse and grader error rates,
    ``usage`` and ``model_graders_token_usage`` the token counts, ``timing.step.full_iteration``
    the step time. Every other number lands in ``extra`` under its slash-joined path.
    """
    raw_scores = data.get("scores")
    scores: Mapping[str, Any] = raw_scores if isinstance(raw_scores, dict) else {}
    grader_rewards: dict[str, float] = {}
    extra: dict[str, float] = {}
    for name, entry in _graders(scores.get("graders")):
        if (train := _num(entry.get("train_reward_mean"))) is not None:
            grader_rewards[name] = train
        if (valid := _num(entry.get("valid_reward_mean"))) is not None:
            extra[f"graders/{name}/valid_reward_mean"] = valid

    parse_rates: list[float] = []
    error_rates: list[float] = []
    errors = data.get("errors")
    for name, entry in _graders(errors.get("graders") if isinstance(errors, dict) else None):
        other = 0.0
        for key, value in entry.items():
            if (number := _num(value)) is None:
                continue
            extra[f"errors/{name}/{key}"] = number
            if key in _PARSE_ERRORS:
                parse_rates.append(number)
            elif key.startswith("train_") and key.endswith("_error_mean"):
                other += number
        error_rates.append(min(1.0, other))

    tokens: dict[str, float] = {}
    _flatten("", data.get("usage"), tokens)
    _flatten("model_graders", data.get("model_graders_token_usage"), tokens)
    for key, value in data.items():
        if key in _CONSUMED:
            continue
        if "tokens" in key and (number := _num(value)) is not None:
            tokens[key] = number
        else:
            _flatten(key, value, extra)
    timing = data.get("timing")
    step_time = timing.get("step") if isinstance(timing, dict) else None
    return StepMetrics(
        step=_int(data.get("step")),
        total_steps=_int(data.get("total_steps")),
        train_reward_mean=_first(
            scores.get("train_reward_mean"),
            data.get("train_reward_mean"),
            data.get("train_mean_reward"),
        ),
        train_reward_std=_num(data.get("train_reward_std")),
        valid_reward_mean=_first(
            scores.get("valid_reward_mean"),
            data.get("valid_reward_mean"),
            data.get("full_valid_mean_reward"),
        ),
        grader_rewards=grader_rewards,
        parse_error_rate=max(parse_rates)
        if parse_rates
        else _num(data.get("full_valid_mean_parse_error")),
        grader_error_rate=max(error_rates) if error_rates else None,
        completion_length_mean=_num(data.get("completion_tokens_mean")),
        step_seconds=_num(step_time.get("full_iteration")) if isinstance(step_time, dict) else None,
        tokens=tokens,
        extra=extra,
    )


# graders/run error flags -> rlft.graders.GradeResult error kinds (reference §3).
_GRADE_ERRORS = {
    "formula_parse_error": "formula",
    "sample_parse_error": "sample_parse",
    "invalid_variable_error": "invalid_variable",
    "python_grader_server_error": "python_server",
    "python_grader_runtime_error": "python_runtime",
    "model_grader_server_error": "model_server",
    "model_grader_parse_error": "model_parse",
    "model_grader_refusal_error": "model_server",
    "truncated_observation_error": "other",
    "unresponsive_reward_error": "other",
    "other_error": "other",
}
_GRADE_DETAILS = (
    "python_grader_runtime_error_details",
    "python_grader_server_error_type",
    "model_grader_server_error_details",
)


def to_grade_result(answer: Mapping[str, Any]) -> GradeResult:
    """A ``graders/run`` response as a ``GradeResult``.

    ``score`` is the service's ``reward`` as is (what training would use); each true error flag
    becomes an error kind, and the service's error details become ``reason``.
    """
    from rlft.graders import GradeResult

    metadata = answer.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, dict) else {}
    flags = meta.get("errors")
    kinds: list[str] = []
    if isinstance(flags, dict):
        for flag, kind in _GRADE_ERRORS.items():
            if flags.get(flag) is True and kind not in kinds:
                kinds.append(kind)
        details = [str(flags[key]) for key in _GRADE_DETAILS if flags.get(key)]
    else:
        details = []
    sub = answer.get("sub_rewards")
    return GradeResult.model_validate(
        {
            "score": _num(answer.get("reward")) or 0.0,
            "sub_scores": {
                str(k): float(v)
                for k, v in (sub.items() if isinstance(sub, dict) else ())
                if _num(v) is not None
            },
            "errors": tuple(kinds),
            "reason": "; ".join(details) or None,
            "latency_s": _num(meta.get("execution_time")) or 0.0,
        }
    )
