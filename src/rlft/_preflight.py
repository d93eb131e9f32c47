"""Preflight: is there a learning signal before you pay for training?

RFT refines what a model can already sometimes do. Sampling the base model a few times on a few
training prompts and grading the answers with the job's own grader tells you, for the price of
those completions, whether training can learn anything:

- a mean reward near 0 means no signal (prompt work or SFT first), near 1 nothing to learn;
  Microsoft's RFT guidance aims for a base pass rate of roughly 30-50%;
- GRPO-style methods learn from the differences between the samples of *one* prompt (the group
  advantage), so a prompt whose samples all scored the same ("flat") teaches nothing, however
  good the overall mean looks. Preflight reports each prompt's spread and the share of flat
  prompts.
"""

from __future__ import annotations

import random
import statistics
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, computed_field

from rlft.exceptions import CapabilityError, ProviderError, UsageError

if TYPE_CHECKING:
    from rlft._spec import JobSpec
    from rlft.provider import Provider

__all__ = ["PreflightPrompt", "PreflightReport", "PreflightSample", "run_preflight"]

NEAR_ZERO = 0.05
"""A mean reward at or below this warns: no learning signal."""
NEAR_ONE = 0.95
"""A mean reward at or above this warns: nothing to learn."""
TARGET_PASS_RATE = (0.3, 0.5)
"""The base pass rate Microsoft's RFT guidance aims for; quoted in the warnings' advice."""
MIN_STD = 0.01
"""With one sample per prompt: a standard deviation below this warns (every sample the same)."""
FLAT_SPREAD = 1e-6
"""A prompt whose samples' scores differ by at most this is flat: no learning signal."""
MAX_FLAT_SHARE = 0.5
"""More than this share of flat prompts warns: most of the data teaches nothing."""
MAX_FAILED_SHARE = 0.5
"""More than this share of grades failing (scored 0 with an error) warns: check the grader."""
_GRADE_CONCURRENCY = 4  # model graders call a judge: don't fire k requests at once


class PreflightSample(BaseModel):
    """One sampled prompt, one of the base model's answers to it, and its grade."""

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
    attempt: int = 0
    """Which of the prompt's samples this is (0 to ``per_prompt - 1``)."""


class PreflightPrompt(BaseModel):
    """The spread of one prompt's rewards across its samples."""

    model_config = ConfigDict(frozen=True)

    index: int
    """The row of the training set."""
    line: int | None = None
    prompt: str
    scores: tuple[float, ...]
    """Each sample's reward, in sampling order."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mean(self) -> float:
        """The prompt's mean reward (its pass rate for a pass/fail grader)."""
        return statistics.fmean(self.scores)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def std(self) -> float:
        """The rewards' standard deviation: what GRPO divides a sample's advantage by."""
        return statistics.pstdev(self.scores)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def spread(self) -> float:
        """Highest minus lowest reward: 0 means every sample scored the same."""
        return max(self.scores) - min(self.scores)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flat(self) -> bool:
        """Every sample scored the same (with more than one sample): no learning signal."""
        return len(self.scores) > 1 and self.spread <= FLAT_SPREAD


class PreflightReport(BaseModel):
    """What preflight found. ``warnings`` is empty when the job looks trainable."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str | None
    samples: list[PreflightSample] = Field(default_factory=list)
    """Every graded answer, prompt by prompt."""
    prompts: list[PreflightPrompt] = Field(default_factory=list)
    """Each sampled prompt with the spread of its rewards."""
    per_prompt: int = 1
    """Samples drawn per prompt."""
    mean: float
    std: float
    minimum: float
    maximum: float
    failed_grades: int
    """Grades that failed closed (scored 0 with an error)."""
    flat_prompts: int = 0
    """Prompts whose samples all scored the same (only counted with ``per_prompt > 1``)."""
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing warned."""
        return not self.warnings

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flat_share(self) -> float:
        """The share of sampled prompts that are flat (0 with one sample per prompt)."""
        return self.flat_prompts / len(self.prompts) if self.prompts else 0.0

    def format(self) -> str:
        """A few human lines: the numbers, then each warning."""
        lines = [
            f"preflight on {self.provider} ({self.model or 'default model'}): "
            f"{len(self.samples)} samples, mean reward {self.mean:.3f} "
            f"(std {self.std:.3f}, min {self.minimum:.3f}, max {self.maximum:.3f})"
            + (f", {self.failed_grades} grade(s) failed" if self.failed_grades else "")
        ]
        if self.per_prompt > 1:
            lines.append(
                f"{len(self.prompts)} prompts x {self.per_prompt} samples: "
                f"{self.flat_prompts} flat ({self.flat_share:.0%}: every sample scored the same)"
            )
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


_AIM = "aim for a base pass rate of roughly {:.0%}-{:.0%} (Microsoft's RFT guidance)".format(
    *TARGET_PASS_RATE
)


def _warnings(
    scores: list[float], prompts: list[PreflightPrompt], failed: int, first_reason: str | None
) -> list[str]:
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
            "training has no learning signal; improve the prompt, use easier prompts, give "
            f"partial credit, or fine-tune (SFT) first: {_AIM}"
        )
    elif mean >= NEAR_ONE:
        found.append(
            f"mean reward {mean:.3f} is near 1: the base model already solves these prompts, so "
            f"there is little to learn; use harder prompts or a stricter grader: {_AIM}"
        )
    grouped = [p for p in prompts if len(p.scores) > 1]
    flat = [p for p in grouped if p.flat]
    if grouped and len(flat) > MAX_FLAT_SHARE * len(grouped):
        never = sum(p.mean <= NEAR_ZERO for p in flat)
        always = sum(p.mean >= NEAR_ONE for p in flat)
        found.append(
            f"{len(flat)} of {len(grouped)} prompts are flat ({len(flat) / len(grouped):.0%}; "
            f"{never} never solved, {always} always solved): every sample of a flat prompt scored "
            "the same, so GRPO gets no learning signal from it; give the grader partial credit, "
            f"drop or rework prompts the model always or never solves, or sample more per "
            f"prompt: {_AIM} per prompt"
        )
    elif not grouped and len(scores) > 1 and std < MIN_STD:
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
    per_prompt: int = 4,
    max_tokens: int | None = None,
    seed: int = 0,
) -> PreflightReport:
    """Sample ``per_prompt`` answers on each of ``samples`` training prompts and grade them.

    Each prompt is sent ``per_prompt`` times through ``provider.generate`` (one batch), so
    the report can say, per prompt, how far its rewards spread: the signal GRPO learns from.

    Args:
        provider: A provider with the ``generate`` capability.
        spec: The job: its base model, training set and grader.
        samples: How many prompts (at most the training set's size).
        per_prompt: Answers sampled per prompt (1 skips the per-prompt spread).
        max_tokens: Longest completion (default: ``hyperparameters.max_completion_tokens``).
        seed: Picks the prompts, so two runs sample the same rows.

    Raises:
        CapabilityError: The provider cannot sample its base model.
        UsageError: ``samples`` or ``per_prompt`` is below 1, or the training set is empty.
    """
    if samples < 1:
        raise UsageError(f"preflight needs at least 1 sample, got {samples}")
    if per_prompt < 1:
        raise UsageError(f"preflight needs at least 1 sample per prompt, got {per_prompt}")
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
    # Prompt by prompt: [p0, p0, p0, p1, p1, p1, ...]; generate samples each independently.
    order = [
        (position, attempt) for position in range(len(examples)) for attempt in range(per_prompt)
    ]
    completions = await provider.generate(
        model=spec.model,
        prompts=[examples[position].messages for position, _ in order],
        max_tokens=max_tokens or spec.hyperparameters.max_completion_tokens,
    )
    if len(completions) != len(order):
        raise ProviderError(
            f"generate returned {len(completions)} completions for {len(order)} prompts",
            provider=provider.name,
        )

    results: list[Any] = [None] * len(order)
    limiter = anyio.CapacityLimiter(_GRADE_CONCURRENCY)

    async def grade(slot: int) -> None:
        async with limiter:  # grade() never raises: failures score 0 with a reason
            results[slot] = await spec.grader.grade(
                completions[slot], examples[order[slot][0]].item
            )

    async with anyio.create_task_group() as tg:
        for slot in range(len(order)):
            tg.start_soon(grade, slot)

    graded = [
        PreflightSample(
            index=indices[position],
            line=examples[position].line,
            prompt=_prompt_text(examples[position].messages),
            completion=_shorten(completion, 400),
            score=result.score,
            errors=tuple(result.errors),
            reason=result.reason,
            attempt=attempt,
        )
        for (position, attempt), completion, result in zip(order, completions, results, strict=True)
    ]
    prompts = [
        PreflightPrompt(
            index=indices[position],
            line=example.line,
            prompt=_prompt_text(example.messages),
            scores=tuple(
                s.score for s in graded[position * per_prompt : (position + 1) * per_prompt]
            ),
        )
        for position, example in enumerate(examples)
    ]
    scores = [sample.score for sample in graded]
    failed = [sample for sample in graded if sample.errors]
    first_reason = failed[0].reason if failed else None
    return PreflightReport(
        provider=provider.name,
        model=spec.model,
        samples=graded,
        prompts=prompts,
        per_prompt=per_prompt,
        mean=statistics.fmean(scores),
        std=statistics.pstdev(scores),
        minimum=min(scores),
        maximum=max(scores),
        failed_grades=len(failed),
        flat_prompts=sum(p.flat for p in prompts),
        warnings=_warnings(scores, prompts, len(failed), first_reason),
    )
