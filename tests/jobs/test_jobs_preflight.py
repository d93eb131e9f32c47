"""Preflight: sample the base model, grade with the job's grader, warn on no learning signal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from jobs_helpers import NoPauseFake, make_client

import rlft
from rlft._models import Capabilities
from rlft._preflight import run_preflight
from rlft._spec import JobSpec
from rlft.exceptions import CapabilityError, UsageError
from rlft.graders import StringCheck
from rlft.testing import FakeProvider, FakeSettings

pytestmark = pytest.mark.anyio

LABELS = ["billing", "bug", "account", "shipping"]
GRADER = StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)


def job(n: int = 16) -> JobSpec:
    train = rlft.Dataset.from_records(
        [
            {"messages": [{"role": "user", "content": f"route ticket {i}"}], "label": LABELS[i % 4]}
            for i in range(n)
        ]
    )
    return JobSpec(train=train, grader=GRADER, model="base-model")


def provider(*completions: str) -> FakeProvider:
    return FakeProvider(settings=FakeSettings(completions=completions))


class ByPrompt(FakeProvider):
    """Answers every sample of prompt ``i`` the same: ``answer(i)`` (a deterministic model)."""

    def __init__(self, answer: Callable[[int], str]) -> None:
        super().__init__(settings=FakeSettings())
        self.answer = answer
        self.prompts: list[str] = []

    async def generate(self, *, model, prompts, max_tokens=None):  # type: ignore[no-untyped-def]
        numbers = [int(p[-1]["content"].split()[-1]) for p in prompts]
        self.prompts += [p[-1]["content"] for p in prompts]
        return [self.answer(n) for n in numbers]


def right(n: int) -> str:
    return LABELS[n % 4]


async def test_a_model_that_sometimes_succeeds_passes() -> None:
    report = await run_preflight(provider("billing", "bug", "nope"), job(), samples=8)
    assert report.ok, report.warnings
    assert report.per_prompt == 4 and len(report.samples) == 32 and len(report.prompts) == 8
    assert 0 < report.mean < 1 and report.std > 0.1
    assert report.provider == "fake" and report.model == "base-model"
    assert report.flat_prompts < 4 and report.flat_share == report.flat_prompts / 8


async def test_each_prompt_is_sampled_per_prompt_times_in_one_batch() -> None:
    model = ByPrompt(right)
    report = await run_preflight(model, job(), samples=3, per_prompt=5, seed=1)
    indices = [p.index for p in report.prompts]
    assert model.prompts == [f"route ticket {i}" for i in indices for _ in range(5)]
    assert [(s.index, s.attempt) for s in report.samples] == [
        (i, a) for i in indices for a in range(5)
    ]


async def test_per_prompt_spread_mean_and_flatness() -> None:
    # Samples of a prompt alternate right/wrong on even rows; odd rows are always wrong.
    answers = iter(["billing", "nope", "billing", "nope"] * 100)

    class Alternating(FakeProvider):
        async def generate(self, *, model, prompts, max_tokens=None):  # type: ignore[no-untyped-def]
            out = []
            for p in prompts:
                n = int(p[-1]["content"].split()[-1])
                out.append(next(answers) if n % 4 == 0 else "nope")
            return out

    spec = job(8)  # rows 0 and 4 are "billing"
    report = await run_preflight(Alternating(settings=FakeSettings()), spec, samples=8)
    by_row = {p.index: p for p in report.prompts}
    assert by_row[0].scores == (1.0, 0.0, 1.0, 0.0)
    assert (by_row[0].mean, by_row[0].spread, by_row[0].flat) == (0.5, 1.0, False)
    assert by_row[0].std == 0.5 and by_row[1].std == 0.0
    assert (by_row[1].scores, by_row[1].spread, by_row[1].flat) == ((0.0,) * 4, 0.0, True)
    assert report.flat_prompts == 6 and report.flat_share == 0.75
    dumped = report.model_dump(mode="json")
    assert dumped["flat_share"] == 0.75 and dumped["prompts"][0]["flat"] is False


async def test_flat_prompts_warn_even_when_the_mean_looks_right() -> None:
    # Half the prompts always right, half always wrong: mean 0.5, the textbook pass rate, yet
    # every group's samples agree, so the group advantage is zero everywhere.
    model = ByPrompt(lambda n: right(n) if n % 2 == 0 else "nope")
    report = await run_preflight(model, job(8), samples=8)
    assert report.mean == 0.5 and report.flat_prompts == 8
    (warning,) = report.warnings
    assert "8 of 8 prompts are flat (100%; 4 never solved, 4 always solved)" in warning
    assert "no learning signal" in warning and "partial credit" in warning
    assert "30%-50%" in warning
    assert "8 flat (100%" in report.format()


async def test_few_flat_prompts_do_not_warn() -> None:
    calls = iter(range(10_000))
    model = ByPrompt(lambda n: right(n) if next(calls) % 2 == 0 else "nope")
    report = await run_preflight(model, job(), samples=8)
    assert report.flat_prompts == 0 and report.ok, report.warnings


async def test_near_zero_warns_no_learning_signal() -> None:
    report = await run_preflight(provider("no idea"), job(), samples=8)
    assert report.mean == 0.0
    assert any("near 0" in w and "SFT" in w and "30%-50%" in w for w in report.warnings)
    assert any("8 never solved, 0 always solved" in w for w in report.warnings)


async def test_near_one_warns_nothing_to_learn() -> None:
    report = await run_preflight(ByPrompt(right), job(), samples=8)
    assert report.mean == 1.0
    assert any("near 1" in w and "little to learn" in w for w in report.warnings)
    assert any("0 never solved, 8 always solved" in w for w in report.warnings)


async def test_one_sample_per_prompt_checks_the_overall_variance() -> None:
    class Constant(FakeProvider):
        async def generate(self, *, model, prompts, max_tokens=None):  # type: ignore[no-untyped-def]
            return ["anything"] * len(prompts)

    grader = rlft.graders.TextSimilarity(
        name="sim",
        input="{{ sample.output_text }}",
        reference="anything goes",
        evaluation_metric="fuzzy_match",
    )
    spec = job().model_copy(update={"grader": grader})
    report = await run_preflight(Constant(settings=FakeSettings()), spec, samples=6, per_prompt=1)
    assert 0.05 < report.mean < 0.95
    assert report.flat_prompts == 0 and not any(p.flat for p in report.prompts)
    assert [w for w in report.warnings if "differences between samples" in w]
    assert not [w for w in report.warnings if "near" in w]


async def test_a_failing_grader_is_reported() -> None:
    broken = StringCheck(
        name="label",
        input="{{ sample.output_text }}",
        reference="{{ item.missing }}",
        operation="eq",
    )
    spec = job().model_copy(update={"grader": broken})
    report = await run_preflight(provider("billing"), spec, samples=4, per_prompt=1)
    assert report.failed_grades == 4
    assert any("grader failed on 4 of 4" in w for w in report.warnings)
    assert all(s.errors for s in report.samples)


async def test_the_same_seed_samples_the_same_rows() -> None:
    first = await run_preflight(provider("billing"), job(40), samples=5, seed=3)
    again = await run_preflight(provider("billing"), job(40), samples=5, seed=3)
    other = await run_preflight(provider("billing"), job(40), samples=5, seed=4)
    assert [p.index for p in first.prompts] == [p.index for p in again.prompts]
    assert [p.index for p in first.prompts] != [p.index for p in other.prompts]
    small = await run_preflight(provider("billing"), job(3), samples=8)
    assert len(small.prompts) == 3 and len(small.samples) == 12


async def test_max_tokens_come_from_the_job() -> None:
    seen: list[int | None] = []

    class Recording(FakeProvider):
        async def generate(self, *, model, prompts, max_tokens=None):  # type: ignore[no-untyped-def]
            seen.append(max_tokens)
            return ["billing"] * len(prompts)

    spec = job().model_copy(
        update={"hyperparameters": rlft.Hyperparameters(max_completion_tokens=77)}
    )
    await run_preflight(Recording(settings=FakeSettings()), spec, samples=2)
    await run_preflight(Recording(settings=FakeSettings()), spec, samples=2, max_tokens=5)
    assert seen == [77, 5]


async def test_a_provider_without_inference_says_how_to_skip() -> None:
    class Blind(FakeProvider):
        capabilities: ClassVar[Capabilities] = FakeProvider.capabilities.model_copy(
            update={"generate": False}
        )

    with pytest.raises(CapabilityError, match="--no-preflight"):
        await run_preflight(Blind(settings=FakeSettings()), job())
    with pytest.raises(UsageError, match="at least 1"):
        await run_preflight(provider("x"), job(), samples=0)
    with pytest.raises(UsageError, match="at least 1 sample per prompt"):
        await run_preflight(provider("x"), job(), per_prompt=0)


async def test_through_the_client(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"completions": ["billing"]}) as client:
        report = await client.jobs.preflight(job(), samples=4, per_prompt=2)
        assert len(report.samples) == 8
        expected = sum(LABELS[s.index % 4] == "billing" for s in report.samples) / 8
        assert report.mean == pytest.approx(expected) and "preflight on fake" in report.format()
        nopause = client.provider_for("nopause")
        assert isinstance(nopause, NoPauseFake)
        report = await client.jobs.preflight(job(), samples=4, provider="nopause")
        assert report.provider == "nopause"
