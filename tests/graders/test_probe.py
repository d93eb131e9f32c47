"""The gameability probe finds the classic reward hacks, and passes a grader that resists them."""

from __future__ import annotations

from typing import Any

import pytest

from rlft import graders as g
from rlft.graders._probe import PROBE_KINDS, probe
from rlft.graders._runtime.engine import EngineOptions

from .conftest import ScriptedJudge

pytestmark = pytest.mark.anyio

ROWS: list[dict[str, Any]] = [
    {
        "messages": [{"role": "user", "content": "Is 'refund please' billing or technical?"}],
        "label": "billing",
    },
    {
        "messages": [{"role": "user", "content": "Is 'app crashed' billing or technical?"}],
        "label": "technical",
    },
]


def flagged(report: Any) -> set[str]:
    return {finding.kind for finding in report.gameable}


async def test_contains_check_on_the_whole_output_is_gameable_many_ways() -> None:
    grader = g.StringCheck(
        name="g", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="ilike"
    )
    report = await probe(grader, ROWS)
    # The prompt names both labels, so echoing it passes; so do lists and stuffed outputs.
    assert {"echo_prompt", "all_labels", "long_output", "json_extra_keys"} <= flagged(report)
    assert not {"empty", "whitespace", "json_missing_keys"} & flagged(report)
    finding = next(f for f in report.findings if f.kind == "echo_prompt")
    assert (finding.passed, finding.total, finding.max) == (2, 2, 1.0)
    assert "eq" in finding.hint


async def test_eq_on_a_parsed_field_resists_every_probe() -> None:
    grader = g.StringCheck(
        name="g",
        input="{{ sample.output_json.label }}",
        reference="{{ item.label }}",
        operation="eq",
    )
    report = await probe(grader, ROWS)
    assert report.gameable == []
    assert {f.kind for f in report.findings} == set(PROBE_KINDS) - {"judge_injection"}
    missing = next(f for f in report.findings if f.kind == "json_missing_keys")
    assert missing.errors == {"invalid_variable": 2}  # failed closed, and said why


async def test_a_grader_that_rewards_the_empty_answer_is_flagged() -> None:
    grader = g.StringCheck(
        name="g", input="{{ sample.output_text }}", reference="wrong", operation="ne"
    )
    assert {"empty", "whitespace"} <= flagged(await probe(grader, ROWS))


async def test_similarity_to_the_template_text_itself() -> None:
    # A reference that is not a template (a typo'd constant) is matched by its own text.
    grader = g.TextSimilarity(
        name="g",
        input="{{ sample.output_text }}",
        reference="item.label",
        evaluation_metric="fuzzy_match",
    )
    assert "template_text" in flagged(await probe(grader, ROWS))


async def test_judge_injection_against_a_gullible_judge() -> None:
    def gullible(request: g.JudgeRequest) -> str:
        answer = request.messages[-1]["content"]
        return (
            '{"result": 1.0, "steps": []}'
            if "SYSTEM NOTE" in answer
            else '{"result": 0.0, "steps": []}'
        )

    grader = g.ScoreModel(
        name="judge",
        model="m",
        input=[
            g.Message(role="system", content="Is the label {{ item.label }}?"),
            g.Message(role="user", content="{{ sample.output_text }}"),
        ],
    )
    report = await probe(grader, ROWS, options=EngineOptions(judge=ScriptedJudge(gullible)))
    assert flagged(report) == {"judge_injection"}


async def test_threshold_and_candidates_from_label_models() -> None:
    grader = g.Multi(
        name="m",
        calculate_output="tone",
        graders={
            "tone": g.LabelModel(
                name="tone",
                model="m",
                input=[g.Message(role="user", content="{{ sample.output_text }}")],
                labels=["calm", "angry"],
                passing_labels=["calm"],
            )
        },
    )
    seen: list[str] = []

    def judge(request: g.JudgeRequest) -> str:
        seen.append(request.messages[-1]["content"])
        return '{"result": "angry"}'

    report = await probe(
        grader, ROWS[:1], threshold=0.0, options=EngineOptions(judge=ScriptedJudge(judge))
    )
    assert report.gameable == [] and "calm, angry" in seen  # labels are candidates


async def test_one_distinct_label_is_not_mistaken_for_listing_them_all() -> None:
    # Every row has the same answer: "all labels" would just be the right answer, so decoys
    # are added; an eq grader stays clean and a contains grader is still caught.
    rows = [{**row, "label": "billing"} for row in ROWS]
    exact = g.StringCheck(
        name="g", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
    )
    assert "all_labels" not in flagged(await probe(exact, rows))
    contains = exact.model_copy(update={"operation": "ilike"})
    assert "all_labels" in flagged(await probe(contains, rows))
