"""Preflight: sample the base model, grade with the job's grader, warn on no learning signal."""

from __future__ import annotations

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


async def test_a_model_that_sometimes_succeeds_passes() -> None:
    report = await run_preflight(provider("billing", "bug", "nope"), job(), samples=8)
    assert report.ok, report.warnings
    assert len(report.samples) == 8 and 0 < report.mean < 1 and report.std > 0.1
    assert report.provider == "fake" and report.model == "base-model"


async def test_near_zero_warns_no_learning_signal() -> None:
    report = await run_preflight(provider("no idea"), job(), samples=8)
    assert report.mean == 0.0
    assert any("near 0" in w and "SFT" in w for w in report.warnings)
    assert any("every sample scored 0.000" in w for w in report.warnings)


async def test_near_one_warns_nothing_to_learn() -> None:
    class Oracle(FakeProvider):
        async def generate(self, *, model, prompts, max_tokens=None):  # type: ignore[no-untyped-def]
            # Answers each prompt with its own label: a model that already solves the task.
            return [LABELS[int(p[-1]["content"].split()[-1]) % 4] for p in prompts]

    report = await run_preflight(Oracle(settings=FakeSettings()), job(), samples=8)
    assert report.mean == 1.0
    assert any("near 1" in w and "little to learn" in w for w in report.warnings)


async def test_no_variance_warns_even_mid_range() -> None:
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
    report = await run_preflight(Constant(settings=FakeSettings()), spec, samples=6)
    assert 0.05 < report.mean < 0.95
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
    report = await run_preflight(provider("billing"), spec, samples=4)
    assert report.failed_grades == 4
    assert any("grader failed on 4 of 4" in w for w in report.warnings)
    assert all(s.errors for s in report.samples)


async def test_the_same_seed_samples_the_same_rows() -> None:
    first = await run_preflight(provider("billing"), job(40), samples=5, seed=3)
    again = await run_preflight(provider("billing"), job(40), samples=5, seed=3)
    other = await run_preflight(provider("billing"), job(40), samples=5, seed=4)
    assert [s.index for s in first.samples] == [s.index for s in again.samples]
    assert [s.index for s in first.samples] != [s.index for s in other.samples]
    small = await run_preflight(provider("billing"), job(3), samples=8)
    assert len(small.samples) == 3


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


async def test_through_the_client(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db", settings={"completions": ["billing"]}) as client:
        report = await client.jobs.preflight(job(), samples=4)
        expected = sum(LABELS[s.index % 4] == "billing" for s in report.samples) / 4
        assert report.mean == pytest.approx(expected) and "preflight on fake" in report.format()
        nopause = client.provider_for("nopause")
        assert isinstance(nopause, NoPauseFake)
        report = await client.jobs.preflight(job(), samples=4, provider="nopause")
        assert report.provider == "nopause"
