"""The public grading API over the engine: ``grade``, ``grade_many`` and ``item_references``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rlft.exceptions import UsageError
from rlft.graders._result import GradeResult, ItemReference
from rlft.graders._runtime.engine import EngineOptions, Outcome, evaluate, map_bounded

if TYPE_CHECKING:
    from rlft.graders._runtime.judge import Embedder, Judge
    from rlft.graders._spec import BaseGrader

__all__ = ["grade", "grade_many", "item_references", "to_result"]


def to_result(outcome: Outcome) -> GradeResult:
    """Convert the engine's plain outcome into a ``GradeResult``."""
    return GradeResult(
        score=outcome.score,
        sub_scores={key: sub.score for key, sub in outcome.sub.items()},
        errors=outcome.all_errors,
        reason=outcome.reason,
        latency_s=outcome.latency_s,
        sub_results={key: to_result(sub) for key, sub in outcome.sub.items()},
        passed=outcome.passed,
    )


async def grade(
    grader: BaseGrader,
    sample: Any,
    item: Mapping[str, Any] | None = None,
    *,
    judge: Judge | None = None,
    embedder: Embedder | None = None,
    pool: Any = None,
) -> GradeResult:
    """Grade one sample on the local engine. Never raises; failures score 0.0 with the reason.

    Args:
        grader: Any grader.
        sample: Text, ``{"output_text": ...}``, a chat completion or an assistant message.
        item: The dataset row's fields, or ``None``.
        judge: For model graders (default: ``OpenAIJudge()`` configured from the environment).
        embedder: For ``cosine`` similarity.
        pool: The Python sandbox pool (default: the process-wide pool).
    """
    options = EngineOptions(judge=judge, embedder=embedder, pool=pool)
    return to_result(await evaluate(grader.to_dict(), sample, item, options))


async def grade_many(
    grader: BaseGrader,
    samples: Sequence[Any],
    items: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    concurrency: int = 8,
    judge: Judge | None = None,
    embedder: Embedder | None = None,
    pool: Any = None,
) -> list[GradeResult]:
    """Grade many samples with at most ``concurrency`` in flight; results keep input order.

    Args:
        grader: Any grader.
        samples: One entry per sample.
        items: One dataset row per sample, or ``None`` when the grader reads no ``item.*``.
        concurrency: The most grades running at once (judge calls, sandbox runs).
        judge: See ``grade``.
        embedder: See ``grade``.
        pool: See ``grade``.

    Raises:
        UsageError: ``items`` and ``samples`` differ in length, or ``concurrency < 1``.
    """
    if concurrency < 1:
        raise UsageError(f"concurrency must be at least 1, got {concurrency}")
    rows: Sequence[Mapping[str, Any] | None] = items if items is not None else [None] * len(samples)
    if len(rows) != len(samples):
        raise UsageError(
            f"grade_many got {len(samples)} samples but {len(rows)} items: pass one item per sample"
        )
    spec = grader.to_dict()
    options = EngineOptions(judge=judge, embedder=embedder, pool=pool)

    async def one(index: int) -> Outcome:
        return await evaluate(spec, samples[index], rows[index], options)

    outcomes = await map_bounded(one, len(samples), concurrency)
    return [to_result(outcome) for outcome in outcomes]


def item_references(grader: BaseGrader) -> list[ItemReference]:
    """Every ``{{ item.* }}`` the grader reads, found without running it.

    Python graders read ``item`` in code, which a static pass can't see; they contribute none.
    """
    references: list[ItemReference] = []
    for grader_path, template in grader.templates():
        for variable in template.variables:
            if variable.namespace == "item":
                references.append(
                    ItemReference(
                        path=variable.path, grader_path=grader_path, template=variable.text
                    )
                )
    return references
