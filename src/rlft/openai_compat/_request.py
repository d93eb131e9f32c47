"""Check a ``JobSpec`` against an OpenAI-compatible backend's rules and build the create body.

``check_job_spec`` is pure and runs before any upload; ``build_create_body`` runs the same checks
again (cheap) so a body is never built from an unchecked spec. Ranges come from the OpenAI spec's
``FineTuneReinforcementHyperparameters`` and ``CreateFineTuningJobRequest``
(reference/openai_azure.md §1.2, §1.3, must-do 7).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlft.exceptions import HyperparameterError, UsageError

if TYPE_CHECKING:
    from rlft._spec import CreateJobRequest, JobSpec

__all__ = [
    "IDEMPOTENCY_METADATA_KEY",
    "Dialect",
    "body_enum",
    "build_create_body",
    "check_job_spec",
    "idempotency_tag",
    "wire_hyperparameters",
]

IDEMPOTENCY_METADATA_KEY = "rlft_idempotency_key"
"""The metadata key every job rlft creates carries, so a retried create finds the first job."""

OPENAI_SPEC = "OpenAI OpenAPI spec 2.3.0"
"""Where the default rules come from (github.com/openai/openai-openapi @ f85dbe2, 2026-08-21)."""
TAG_LENGTH = 8


def idempotency_tag(key: str) -> str:
    """The short tag a backend without job metadata carries in the model suffix instead."""
    return hashlib.sha256(key.encode()).hexdigest()[:TAG_LENGTH]


SEED_MAX = 2_147_483_647
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512


def _int_range(low: int, high: int | None) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return ok and (high is None or value <= high)

    return check


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _compute(value: Any) -> bool:
    return _positive(value) and 0.00001 < value <= 10


# wire name -> (check, allowed range in words), from the spec's
# FineTuneReinforcementHyperparameters. "auto" is accepted for all but reasoning_effort, whose
# values come from the dialect.
_HYPERPARAMETERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_epochs": (_int_range(1, 50), '"auto" or an integer from 1 to 50'),
    "batch_size": (_int_range(1, 256), '"auto" or an integer from 1 to 256'),
    "learning_rate_multiplier": (_positive, '"auto" or a number > 0'),
    "compute_multiplier": (_compute, '"auto" or a number in (0.00001, 10]'),
    "eval_interval": (_int_range(1, None), '"auto" or an integer >= 1'),
    "eval_samples": (_int_range(1, None), '"auto" or an integer >= 1'),
    "reasoning_effort": (lambda v: True, ""),  # checked against Dialect.reasoning_efforts
}

# rlft.Hyperparameters field -> wire name inside method.reinforcement.hyperparameters.
_NEUTRAL_TO_WIRE = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
    "compute_multiplier": "compute_multiplier",
    "eval_interval": "eval_interval",
    "eval_samples": "eval_samples",
    "reasoning_effort": "reasoning_effort",
}

# Neutral fields hosted RFT has no knob for: refused rather than silently dropped.
_UNSUPPORTED = {
    "learning_rate": "not settable; use learning_rate_multiplier (scales the service's rate)",
    "samples_per_prompt": "not settable; the service chooses how many samples it draws",
    "max_completion_tokens": "not settable for hosted RFT",
    "max_steps": "not settable; use epochs",
}


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """What differs between OpenAI-compatible backends in the create request.

    Attributes:
        provider: The provider id errors name.
        suffix_max: The longest model suffix (``spec.name``) the backend takes.
        suffix_pattern: Characters the suffix may use, when restricted.
        suffix_rule: The rule in words, for the error message.
        requires_validation: Whether a validation set is mandatory.
        send_metadata: Whether to send ``metadata`` (labels and the idempotency key).
        body_options: ``provider_options`` keys sent as top-level body fields.
        max_train_examples: The training set limit, or ``None``.
        max_validation_examples: The validation set limit, or ``None``.
        metadata_filter: Whether listing jobs takes ``metadata[key]=value`` (OpenAI does; Azure's
            v1 spec lists only ``after`` and ``limit``, so the key is checked client-side).
        suffix_tag: Without metadata, carry ``idempotency_tag(key)`` at the end of the suffix
            and find a lost create by it, among jobs created within ``reconcile_window``.
        reconcile_window: Seconds back a suffix-tag lookup searches.
        reasoning_efforts: The ``reasoning_effort`` values the backend documents.
        drop_values: Hyperparameter values not sent at all (the service default), by wire name.
        body_enums: Top-level body fields with a fixed spelling: ``{field: (values, source)}``;
            a value matching one case-insensitively is sent in its documented spelling.
        spec: Where the rules come from, named in every refusal.
    """

    provider: str
    suffix_max: int = 64
    suffix_pattern: re.Pattern[str] | None = None
    suffix_rule: str = "1 to 64 characters"
    requires_validation: bool = True
    send_metadata: bool = True
    body_options: frozenset[str] = field(default_factory=lambda: frozenset({"integrations"}))
    max_train_examples: int | None = 50_000
    max_validation_examples: int | None = 1_000
    metadata_filter: bool = True
    suffix_tag: bool = False
    reconcile_window: float = 7 * 24 * 3600.0
    reasoning_efforts: tuple[str, ...] = ("default", "low", "medium", "high")
    drop_values: Mapping[str, frozenset[Any]] = field(default_factory=dict)
    body_enums: Mapping[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    spec: str = OPENAI_SPEC

    @property
    def suffix_budget(self) -> int:
        """The longest job name that fits once the suffix tag is appended."""
        return self.suffix_max - (TAG_LENGTH + 1 if self.suffix_tag else 0)


def _in_words(values: tuple[str, ...]) -> str:
    quoted = [f'"{value}"' for value in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _hyperparameter(dialect: Dialect, wire: str, value: Any, *, shown: str) -> Any:
    check, allowed = _HYPERPARAMETERS[wire]
    if wire == "reasoning_effort":
        efforts = dialect.reasoning_efforts
        check, allowed = (lambda v: v in efforts), _in_words(efforts)
    elif value == "auto":
        return value
    if not check(value):
        where = f"{dialect.spec}, FineTuneReinforcementHyperparameters.{wire}"
        raise HyperparameterError(
            provider=dialect.provider, name=shown, value=value, allowed=f"{allowed} ({where})"
        )
    return value


def wire_hyperparameters(spec: JobSpec, dialect: Dialect) -> tuple[dict[str, Any], dict[str, Any]]:
    """Map and range-check ``spec.hyperparameters``.

    Returns:
        ``(hyperparameters, top_level)``: what goes in ``method.reinforcement.hyperparameters``
        and what goes at the top of the body (``seed``, ``provider_options`` body fields).

    Raises:
        HyperparameterError: A value is out of range, or a neutral field has no hosted knob.
        UsageError: An unknown ``provider_options`` key, or one set twice.
    """
    hp = spec.hyperparameters
    provider = dialect.provider
    wire: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for neutral, reason in _UNSUPPORTED.items():
        if getattr(hp, neutral) is not None:
            raise HyperparameterError(
                provider=provider, name=neutral, value=getattr(hp, neutral), allowed=reason
            )
    for neutral, name in _NEUTRAL_TO_WIRE.items():
        value = getattr(hp, neutral)
        if value is not None and value not in dialect.drop_values.get(name, ()):
            wire[name] = _hyperparameter(dialect, name, value, shown=neutral)
    if hp.seed is not None:
        if not (0 <= hp.seed <= SEED_MAX):
            raise HyperparameterError(
                provider=provider,
                name="seed",
                value=hp.seed,
                allowed=f"0 to {SEED_MAX} ({dialect.spec}: CreateFineTuningJobRequest.seed)",
            )
        top["seed"] = hp.seed
    allowed_keys = sorted({*_HYPERPARAMETERS, *dialect.body_options, "extra_body"})
    for key, value in hp.provider_options.items():
        if key in _HYPERPARAMETERS:
            if key in wire:
                raise UsageError(
                    f"{provider}: hyperparameter {key!r} is set twice (a neutral field and "
                    f"provider_options); keep one"
                )
            if value not in dialect.drop_values.get(key, ()):
                wire[key] = _hyperparameter(dialect, key, value, shown=f"provider_options.{key}")
        elif key == "integrations" and key in dialect.body_options:
            top[key] = _integrations(value, dialect)
        elif key in dialect.body_options:
            top[key] = body_enum(dialect, key, value, shown=f"provider_options.{key}")
        elif key == "extra_body":
            if not isinstance(value, Mapping):
                raise UsageError(f"{provider}: provider_options.extra_body must be a mapping")
            top.update(value)
        else:
            raise UsageError(
                f"{provider}: unknown provider_options key {key!r}; "
                f"known keys: {', '.join(allowed_keys)} (extra_body sends raw body fields)"
            )
    return wire, top


def _integrations(value: Any, dialect: Dialect) -> Any:
    """``integrations`` as the spec types it: a list of ``{"type": "wandb", "wandb": {...}}``
    with a ``project`` (the only integration either spec documents)."""
    example = '[{"type": "wandb", "wandb": {"project": "my-project"}}]'
    ok = isinstance(value, list) and all(
        isinstance(item, Mapping)
        and item.get("type") == "wandb"
        and isinstance(item.get("wandb"), Mapping)
        and isinstance(item["wandb"].get("project"), str)
        and item["wandb"]["project"]
        for item in value
    )
    if not ok:
        raise UsageError(
            f"{dialect.provider}: provider_options.integrations must be a list like {example}; "
            f'"wandb" is the only type ({dialect.spec}: CreateFineTuningJobRequest.integrations)'
        )
    return value


def body_enum(dialect: Dialect, key: str, value: Any, *, shown: str | None = None) -> Any:
    """``value`` in the documented spelling of ``dialect.body_enums[key]``, matched regardless
    of case; a field without an enum passes through.

    Raises:
        UsageError: The value is none of the documented ones (the message names them and the
            source).
    """
    if key not in dialect.body_enums:
        return value
    values, source = dialect.body_enums[key]
    for known in values:
        if isinstance(value, str) and value.casefold() == known.casefold():
            return known
    raise UsageError(
        f"{dialect.provider}: {shown or key}={value!r} is not one of {_in_words(values)} "
        f"(source: {source})"
    )


def _check_metadata(labels: Mapping[str, str], dialect: Dialect) -> None:
    provider, where = dialect.provider, f"({dialect.spec}: Metadata)"
    if len(labels) + 1 > METADATA_MAX_PAIRS:
        raise UsageError(
            f"{provider}: at most {METADATA_MAX_PAIRS - 1} labels fit in job metadata "
            f"(16 pairs, one kept for {IDEMPOTENCY_METADATA_KEY}) {where}; got {len(labels)}"
        )
    for key, value in labels.items():
        if not key or len(key) > METADATA_KEY_MAX:
            raise UsageError(
                f"{provider}: label key {key!r} must be 1 to {METADATA_KEY_MAX} characters {where}"
            )
        if len(str(value)) > METADATA_VALUE_MAX:
            raise UsageError(
                f"{provider}: label {key!r} is {len(str(value))} characters; "
                f"the limit is {METADATA_VALUE_MAX} {where}"
            )


def _check_suffix(name: str, dialect: Dialect) -> None:
    too_long = not (1 <= len(name) <= dialect.suffix_budget)
    if too_long or (dialect.suffix_pattern and not dialect.suffix_pattern.fullmatch(name)):
        tagged = (
            f"; rlft appends '-' and an {TAG_LENGTH}-character key tag, so the name may have at "
            f"most {dialect.suffix_budget}"
            if dialect.suffix_tag
            else ""
        )
        raise UsageError(
            f"{dialect.provider}: job name {name!r} becomes the model suffix, which must be "
            f"{dialect.suffix_rule} ({dialect.spec}: suffix){tagged}; rename the job (name=...)"
        )


_JSON_SCHEMA_KEYS = frozenset({"name", "schema", "strict", "description"})


def _check_response_format(response_format: Mapping[str, Any], dialect: Dialect) -> None:
    """The RFT guide's nested form, as the spec's ``ResponseFormatJsonSchema`` types it."""
    where = f"({dialect.spec}: ResponseFormatJsonSchema)"
    example = '{"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}'
    if not isinstance(response_format.get("type"), str):
        raise UsageError(
            f"{dialect.provider}: response_format needs a 'type' (for example {example}) {where}"
        )
    if response_format["type"] != "json_schema":
        raise UsageError(
            f"{dialect.provider}: response_format.type={response_format['type']!r} is not "
            f'allowed for reinforcement fine-tuning: the only value is "json_schema" {where}'
        )
    inner = response_format.get("json_schema")
    if not isinstance(inner, Mapping) or not isinstance(inner.get("name"), str):
        raise UsageError(
            f"{dialect.provider}: response_format.json_schema needs a 'name' and a 'schema', "
            f"nested as {example} (a flat name/schema is not the spec's form) {where}"
        )
    unknown = sorted(set(inner) - _JSON_SCHEMA_KEYS)
    if unknown:
        raise UsageError(
            f"{dialect.provider}: response_format.json_schema has unknown keys {unknown}; "
            f"allowed: {', '.join(sorted(_JSON_SCHEMA_KEYS))} {where}"
        )


def _size(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None


def check_job_spec(spec: JobSpec, dialect: Dialect) -> None:
    """Refuse a spec the backend would refuse, before anything is uploaded.

    Raises:
        UsageError: No model, a missing validation set, a bad suffix, labels or response format,
            a dataset over the size limit, or a bad ``provider_options`` key.
        HyperparameterError: A hyperparameter out of range.
    """
    provider = dialect.provider
    if not spec.model:
        raise UsageError(
            f"{provider}: name the base model (model=...); rlft never guesses hosted model ids "
            f"because they retire (reference: the provider's model list)"
        )
    if dialect.requires_validation and spec.validation is None:
        raise UsageError(
            f"{provider}: reinforcement fine-tuning needs a validation set; pass validation=... "
            f"(for example train, valid = ds.split(validation=0.1))"
        )
    for role, dataset, limit in (
        ("training", spec.train, dialect.max_train_examples),
        ("validation", spec.validation, dialect.max_validation_examples),
    ):
        size = _size(dataset) if dataset is not None else None
        if limit is not None and size is not None and size > limit:
            raise UsageError(
                f"{provider}: the {role} set has {size} examples; the limit is {limit}. "
                f"Sample it down (ds.split or a smaller file)"
            )
    if spec.name is not None:
        _check_suffix(spec.name, dialect)
    if dialect.send_metadata:
        _check_metadata(spec.labels, dialect)
    if spec.response_format is not None:
        _check_response_format(spec.response_format, dialect)
    wire_hyperparameters(spec, dialect)


def build_create_body(
    request: CreateJobRequest, dialect: Dialect, *, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``POST /fine_tuning/jobs`` body for an RFT job.

    ``defaults`` are top-level fields from settings (Azure's ``trainingType``); the spec's
    ``provider_options`` override them.

    The grader is ``request.grader_payload`` untouched (compiled by ``rlft.graders.compile``);
    ``response_format`` goes inside ``method.reinforcement`` although the OpenAI types omit it
    (https://developers.openai.com/api/docs/guides/reinforcement-fine-tuning).
    """
    spec = request.spec
    check_job_spec(spec, dialect)
    hyperparameters, top = wire_hyperparameters(spec, dialect)
    reinforcement: dict[str, Any] = {"grader": request.grader_payload}
    if hyperparameters:
        reinforcement["hyperparameters"] = hyperparameters
    if spec.response_format is not None:
        reinforcement["response_format"] = spec.response_format
    body: dict[str, Any] = {
        "model": spec.model,
        "training_file": request.training_file,
        "method": {"type": "reinforcement", "reinforcement": reinforcement},
    }
    if request.validation_file is not None:
        body["validation_file"] = request.validation_file
    if dialect.suffix_tag:
        body["suffix"] = f"{spec.name or 'rlft'}-{idempotency_tag(request.idempotency_key)}"
    elif spec.name is not None:
        body["suffix"] = spec.name
    if dialect.send_metadata:
        body["metadata"] = {**spec.labels, IDEMPOTENCY_METADATA_KEY: request.idempotency_key}
    for key, value in (defaults or {}).items():
        body[key] = body_enum(dialect, key, value)
    body.update(top)
    return body
