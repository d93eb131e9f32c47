"""Preflight: is there a learning signal before you pay for training?

RFT refines what a model can already sometimes do. Sampling the base model on a few training
prompts and grading the answers with the job's own grader tells you, for the price of k
completions, whether training can learn anything: a mean reward near 0 means no signal (prompt
work or SFT first), near 1 means nothing to learn, and identical scores give policy-gradient
methods nothing to compare.
"""

from __future__ import annotations

import random
import statistics
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from rlft.exceptions import CapabilityError, ProviderError, UsageError

if TYPE_CHECKING:
    from rlft._spec import JobSpec
    from rlft.provider import Provider

__all__ = ["PreflightReport", "PreflightSample", "run_preflight"]

NEAR_ZERO = 0.05
"""A mean reward at or below this warns: no learning signal."""
NEAR_ONE = 0.95
"""A mean reward at or above this warns: nothing to learn."""
MIN_STD = 0.01
"""A standard deviation below this warns: every sample scored the same."""
MAX_FAILED_SHARE = 0.5
"""More than this share of grades failing (scored 0 with an error) warns: check the grader."""
_GRADE_CONCURRENCY = 4  # model graders call a judge: don't fire k requests at once


class PreflightSample(BaseModel):
    """One sampled prompt, the base model's answer and its grade."""

    model_config = ConfigDict(frozen=True)

    index: int
    """The row of the training set."""
    line: int | None = None
    """The line of the training file, when it came from one."""
    prompt: str
    """The last prompt message (shortened)."""
    completion: str
    score: float
    errors: tuple[str, ...] = ()
    reason: str | None = None


class PreflightReport(BaseModel):
    """What preflight found. ``warnings`` is empty when the job looks trainable."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str | None
    samples: list[PreflightSample] = Field(default_factory=list)
    mean: float
    std: float
    minimum: float
    maximum: float
    failed_grades: int
    """Grades that failed closed (scored 0 with an error)."""
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing warned."""
        return not self.warnings

    def format(self) -> str:
        """A few human lines: the numbers, then each warning."""
        lines = [
            f"preflight on {self.provider} ({self.model or 'default model'}): "
            f"{len(self.samples)} samples, mean reward {self.mean:.3f} "
            f"(std {self.std:.3f}, min {self.minimum:.3f}, max {self.maximum:.3f})"
            + (f", {self.failed_grades} grade(s) failed" if self.failed_grades else "")
        ]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    content = messages[-1].get("content", "") if messages else ""
    if isinstance(content, list):  # content parts
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return _shorten(str(content))


def _warnings(scores: list[float], failed: int, first_reason: str | None) -> list[str]:
    mean = statistics.fmean(scores)
    std = statistics.pstdev(scores)
    found: list[str] = []
    if failed > MAX_FAILED_SHARE * len(scores):
        found.append(
            f"the grader failed on {failed} of {len(scores)} samples ({first_reason}); fix the "
            "grader or the data first: try it on one sample with `rlft grade`"
        )
    if mean <= NEAR_ZERO:
        found.append(
            f"mean reward {mean:.3f} is near 0: the base model almost never succeeds, so "
            "training has no learning signal; improve the prompt or fine-tune (SFT) first"
        )
    elif mean >= NEAR_ONE:
        found.append(
            f"mean reward {mean:.3f} is near 1: the base model already solves these prompts, so "
            "there is little to learn; use harder prompts or a stricter grader"
        )
    if len(scores) > 1 and std < MIN_STD:
        found.append(
            f"every sample scored {mean:.3f} (std {std:.3f}): reinforcement learning learns from "
            "differences between samples; make the grader give partial credit"
        )
    return found


async def run_preflight(
    provider: Provider,
    spec: JobSpec,
    *,
    samples: int = 8,
    max_tokens: int | None = None,
    seed: int = 0,
) -> PreflightReport:
    """Sample ``samples`` training prompts through ``provider.generate`` and grade the answers.

    Args:
        provider: A provider with the ``generate`` capability.
        spec: The job: its base model, training set and grader.
        samples: How many prompts (at most the training set's size).
        max_tokens: Longest completion (default: ``hyperparameters.max_completion_tokens``).
        seed: Picks the prompts, so two runs sample the same rows.

    Raises:
        CapabilityError: The provider cannot sample its base model.
        UsageError: ``samples`` is below 1 or the training set is empty.
    """
    if samples < 1:
        raise UsageError(f"preflight needs at least 1 sample, got {samples}")
    if not provider.capabilities.generate:
        raise CapabilityError(
            provider=provider.name,
            operation="inference",
            reason="preflight samples the base model; skip it with --no-preflight",
        )
    train = spec.train
    if len(train) == 0:
        raise UsageError("the training set is empty: nothing to sample for preflight")
    indices = sorted(random.Random(seed).sample(range(len(train)), min(samples, len(train))))
    examples = [train[i] for i in indices]
    completions = await provider.generate(
        model=spec.model,
        prompts=[example.messages for example in examples],
        max_tokens=max_tokens or spec.hyperparameters.max_completion_tokens,
    )
    if len(completions) != len(examples):
        raise ProviderError(
            f"generate returned {len(completions)} completions for {len(examples)} prompts",
            provider=provider.name,
        )

    results: list[Any] = [None] * len(examples)
    limiter = anyio.CapacityLimiter(_GRADE_CONCURRENCY)

    async def grade(position: int) -> None:
        async with limiter:  # grade() never raises: failures score 0 with a reason
            results[position] = await spec.grader.grade(
                completions[position], examples[position].item
            )

    async with anyio.create_task_group() as tg:
        for position in range(len(examples)):
            tg.start_soon(grade, position)

    graded = [
        PreflightSample(
            index=index,
            line=example.line,
            prompt=_prompt_text(example.messages),
            completion=_shorten(completion, 400),
            score=result.score,
            errors=tuple(result.errors),
            reason=result.reason,
        )
        for index, example, completion, result in zip(
            indices, examples, completions, results, strict=True
        )
    ]
    scores = [sample.score for sample in graded]
    failed = [sample for sample in graded if sample.errors]
    first_reason = failed[0].reason if failed else None
    return PreflightReport(
        provider=provider.name,
        model=spec.model,
        samples=graded,
        mean=statistics.fmean(scores),
        std=statistics.pstdev(scores),
        minimum=min(scores),
        maximum=max(scores),
        failed_grades=len(failed),
        warnings=_warnings(scores, len(failed), first_reason),
    )
