"""GradeResult and ItemReference: what grading returns and what a grader reads from a row."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ERROR_KINDS", "ErrorKind", "GradeResult", "ItemReference"]

ErrorKind = Literal[
    "invalid_variable",
    "sample_parse",
    "python_runtime",
    "python_invalid_return",
    "python_server",
    "timeout",
    "model_server",
    "model_parse",
    "formula",
    "metric_unavailable",
    "unsupported",
    "other",
]
"""Machine-readable failure kinds, modelled on OpenAI's grader error flags
(``invalid_variable_error``, ``sample_parse_error``, ``python_grader_runtime_error``,
``model_grader_parse_error``, ``formula_parse_error``, ...)."""

ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)


class GradeResult(BaseModel):
    """The outcome of grading one sample. A failed grade scores 0.0 and says why; it never raises.

    Example:
        ``GradeResult(score=0.0, errors=("invalid_variable",), reason="item has no field 'x'")``
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float
    """The reward. 0.0 whenever the grader itself failed (fail closed); a ``multi`` whose
    sub-grader failed scores that sub-grader 0 and still evaluates its formula."""
    sub_scores: dict[str, float] = Field(default_factory=dict)
    """For ``multi``: each sub-grader's score by key (the formula's inputs)."""
    errors: tuple[ErrorKind, ...] = ()
    """Failure kinds, from this grader and its sub-graders, without duplicates."""
    reason: str | None = None
    """Human text: why it failed, or the judge's explanation when it gave one."""
    latency_s: float = 0.0
    """Wall-clock seconds spent grading."""
    sub_results: dict[str, GradeResult] = Field(default_factory=dict)
    """For ``multi``: each sub-grader's full result by key."""
    passed: bool | None = None
    """For a grader with ``pass_threshold``: whether ``score`` reached it (a failed grade never
    passes); ``None`` without a threshold."""

    @property
    def ok(self) -> bool:
        """True when the grade did not fail."""
        return not self.errors


class ItemReference(BaseModel):
    """One ``{{ item.* }}`` a grader reads, found statically so datasets can be checked first.

    Example: ``{{ item.ground_truth.date }}`` in a multi's ``label`` reference gives
    ``path=("ground_truth", "date")``, ``grader_path="graders.label.reference"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: tuple[str | int, ...]
    """Keys and indexes below ``item``; empty for ``{{ item }}`` itself."""
    grader_path: str
    """Where the template sits in the grader, e.g. ``"graders.judge.input[0].content"``."""
    template: str
    """The expression as written, e.g. ``"item.ground_truth.date"``."""
