"""What a backend declares about itself beside its ``ProviderSpec``, and the checks at load.

A backend's facts (status words, dataset rules, grader format, rates, hyperparameter names,
lifecycle) are plain data, importable without its SDK. The plugin host checks every declared
fact when plugins load (``spec_problems``), so a malformed table fails then, naming the plugin and
the field, never in the middle of a job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rlft._models import Hyperparameters, JobStatus

if TYPE_CHECKING:
    from rlft.provider import ProviderSpec

__all__ = [
    "GRADER_FORMATS",
    "GraderFacts",
    "HyperparameterFacts",
    "Lifecycle",
    "Rates",
    "import_string",
    "normalise_statuses",
    "spec_problems",
]

# The grader formats the core builds (rlft.graders.compile): OpenAI-style grader JSON (the
# interchange format), TRL reward functions, the Lambda package, and the neutral grader itself.
GRADER_FORMATS = ("openai", "trl", "lambda", "neutral")

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True, kw_only=True)
class GraderFacts:
    """How a neutral grader reaches this backend.

    Attributes:
        format: The core format it accepts: ``"openai"`` (grader JSON), ``"trl"`` (a reward
            function), ``"lambda"`` (a Lambda package) or ``"neutral"`` (the grader itself,
            compiled later by whoever runs it).
        compiler: ``"module:function"`` called as ``function(grader, **options)`` instead of the
            format's own builder, imported on first use only (so nothing heavy loads with the
            plugin). It runs after the support checks.
        native: Whether ``Native(target=<this provider id>)`` graders run here, passed through.
        notes: Support-matrix row -> a short note shown in ``docs/graders.md``'s table.
    """

    format: str
    compiler: str | None = None
    native: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Rates:
    """Prices the budget guard estimates spend from, for this backend's jobs.

    Attributes:
        training_per_hour: USD per hour of training, keyed by model prefix (``""``: any model;
            the longest matching prefix wins).
        grader_tokens_per_million: Grader-model prefix -> ``(input, output)`` USD per million.
        source: Where the prices are published.
    """

    training_per_hour: Mapping[str, float] = field(default_factory=dict)
    grader_tokens_per_million: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class HyperparameterFacts:
    """How the neutral ``Hyperparameters`` map to this backend, and where they are checked.

    Attributes:
        names: Neutral field -> the backend's own name for it.
        ranges: Neutral field -> the values the backend accepts, in words.
        check: ``"module:function"`` of the code that maps and range-checks them (called by the
            provider's ``check_spec``; named here so readers find it).
        source: Where the ranges come from.
    """

    names: Mapping[str, str]
    ranges: Mapping[str, str] = field(default_factory=dict)
    check: str
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """Where the backend is in its life: dates that decide whether a job can still run.

    Attributes:
        note: One or two sentences, dates included (shown by ``rlft providers``).
        source: The page the dates come from.
    """

    note: str
    source: str


def import_string(reference: str) -> Any:
    """The object a ``"module:attribute.path"`` string names, imported now."""
    import importlib

    module_name, _, path = reference.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in path.split("."):
        value = getattr(value, part)
    return value


def normalise_statuses(table: Mapping[Any, Any]) -> Mapping[str, JobStatus]:
    """A status table with lower-case keys and ``JobStatus`` values; raise ``ValueError``."""
    out: dict[str, JobStatus] = {}
    for word, status in table.items():
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"statuses: key {word!r} is not a status word (a non-empty string)")
        try:
            out[word.strip().lower()] = JobStatus(status)
        except ValueError:
            neutral = ", ".join(s.value for s in JobStatus)
            raise ValueError(
                f"statuses[{word!r}]: {status!r} is not a neutral JobStatus ({neutral})"
            ) from None
    return MappingProxyType(out)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _reference(name: str, value: Any, *, exists: bool = True) -> list[str]:
    """Problems with a ``"module:function"`` string; ``exists`` also finds the module (without
    importing it, so nothing heavy loads), so a typo fails at load, not at upload."""
    if value is None:
        return []
    if not (isinstance(value, str) and _REFERENCE.match(value)):
        return [f'{name}: {value!r} is not a "module:function" reference']
    if exists:
        from importlib.util import find_spec

        module = value.partition(":")[0]
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return [f"{name}: no module {module!r} (from {value!r})"]
    return []


def _grader_problems(facts: Any) -> list[str]:
    if not isinstance(facts, GraderFacts):
        return [f"graders: expected rlft.provider.GraderFacts, got {type(facts).__name__}"]
    problems = []
    if facts.format not in GRADER_FORMATS:
        problems.append(
            f"graders.format: {facts.format!r} is not a grader format ({', '.join(GRADER_FORMATS)})"
        )
    problems += _reference("graders.compiler", facts.compiler)
    from rlft.graders._compile import SUPPORT_ROWS

    for row, note in facts.notes.items():
        if row not in SUPPORT_ROWS and not str(row).startswith("native:"):
            problems.append(
                f"graders.notes[{row!r}]: not a support-matrix row ({', '.join(SUPPORT_ROWS)})"
            )
        elif not isinstance(note, str):
            problems.append(f"graders.notes[{row!r}]: not a string")
    return problems


def _rate_problems(rates: Any) -> list[str]:
    if not isinstance(rates, Rates):
        return [f"rates: expected rlft.provider.Rates, got {type(rates).__name__}"]
    problems = []
    for prefix, rate in rates.training_per_hour.items():
        if not isinstance(prefix, str):
            problems.append(f"rates.training_per_hour: key {prefix!r} is not a model prefix")
        elif not _number(rate) or rate < 0:
            problems.append(
                f"rates.training_per_hour[{prefix!r}]: {rate!r} is not a price (a number >= 0)"
            )
    for model, pair in rates.grader_tokens_per_million.items():
        ok = isinstance(pair, tuple | list) and len(pair) == 2
        if not ok or not all(_number(p) and p >= 0 for p in pair):
            problems.append(
                f"rates.grader_tokens_per_million[{model!r}]: {pair!r} is not "
                "(input, output) USD per million tokens"
            )
    return problems


def _hyperparameter_problems(facts: Any) -> list[str]:
    if not isinstance(facts, HyperparameterFacts):
        kind = type(facts).__name__
        return [f"hyperparameters: expected rlft.provider.HyperparameterFacts, got {kind}"]
    known = set(Hyperparameters.model_fields) - {"provider_options"}
    problems = [
        f"hyperparameters.names[{name!r}]: not a field of rlft.Hyperparameters"
        for name in facts.names
        if name not in known
    ]
    problems += [
        f"hyperparameters.ranges[{name!r}]: not in hyperparameters.names"
        for name in facts.ranges
        if name not in facts.names
    ]
    if not facts.check:
        problems.append('hyperparameters.check: name the "module:function" that checks them')
    return problems + _reference("hyperparameters.check", facts.check or None)


def spec_problems(spec: ProviderSpec) -> list[str]:
    """Every malformed fact of ``spec``, each starting with the field it is in."""
    from rlft.datasets._rules import DatasetRules, rules_problems

    problems: list[str] = []
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", spec.name):
        problems.append(f"name: {spec.name!r} is not a provider id (lowercase, [a-z0-9_-])")
    problems += _reference("factory", spec.factory, exists=False)  # may need an extra: later
    try:
        normalise_statuses(spec.statuses)
    except (ValueError, AttributeError) as exc:
        problems.append(str(exc) if isinstance(exc, ValueError) else "statuses: not a mapping")
    if spec.dataset is not None:
        if isinstance(spec.dataset, DatasetRules):
            problems += [f"dataset.{problem}" for problem in rules_problems(spec.dataset)]
        else:
            kind = type(spec.dataset).__name__
            problems.append(f"dataset: expected rlft.provider.DatasetRules, got {kind}")
    if spec.graders is not None:
        problems += _grader_problems(spec.graders)
    if spec.rates is not None:
        problems += _rate_problems(spec.rates)
    if spec.hyperparameters is not None:
        problems += _hyperparameter_problems(spec.hyperparameters)
    if spec.lifecycle is not None and not (
        isinstance(spec.lifecycle, Lifecycle) and spec.lifecycle.note and spec.lifecycle.source
    ):
        problems.append("lifecycle: expected Lifecycle(note=..., source=...), both non-empty")
    return problems
