"""Providers' own graders load and compile as printed (issue 13 items 5, 6 and 11).

The artifacts and their provenance are in ``tests/graders/upstream/README.md``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from rlft import graders as g
from rlft.graders._sandbox.pool import SandboxPool

from .conftest import ScriptedJudge

pytestmark = pytest.mark.anyio

UPSTREAM = Path(__file__).parent / "upstream"
GUIDE: dict[str, dict[str, Any]] = json.loads(
    (UPSTREAM / "openai_graders_guide_examples.json").read_text()
)
FORMS: dict[str, dict[str, Any]] = json.loads((UPSTREAM / "openai_content_forms.json").read_text())
EXAMPLES = {**GUIDE, **FORMS}
COUNTDOWN_ROWS = [
    json.loads(line)
    for line in (UPSTREAM / "microsoft_countdown_valid_3.jsonl").read_text().splitlines()
]


@pytest.mark.parametrize(
    "name",
    ["microsoft_countdown_grader_config_aoai.json", "microsoft_countdown_python_grader.json"],
)
def test_microsofts_graders_compile_for_every_target(name: str) -> None:
    grader = g.load(UPSTREAM / name)
    for target in ("openai", "azure", "local", "trl"):
        g.compile(grader, target)
    package = g.compile(grader, "bedrock")
    assert package.bundled == ()  # a Bedrock judge and a stdlib-only python grader
    assert "rlft_grader_engine/pyworker.py" in package.files


def test_microsofts_countdown_score_model_loads_with_its_pass_threshold() -> None:
    grader = g.load(UPSTREAM / "microsoft_countdown_grader_config_aoai.json")
    assert isinstance(grader, g.ScoreModel)
    assert (grader.name, grader.pass_threshold, grader.range) == ("custom_grader", 5, (0.0, 5.0))
    azure = g.compile(grader, "azure")
    assert azure["pass_threshold"] == 5  # Azure's RFT page documents it on score_model
    assert azure == json.loads(
        (UPSTREAM / "microsoft_countdown_grader_config_aoai.json").read_text()
    )


def test_pass_threshold_is_dropped_with_a_notice_where_the_target_refuses_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grader = g.load(UPSTREAM / "microsoft_countdown_grader_config_aoai.json")
    with caplog.at_level(logging.WARNING, logger="rlft.graders"):
        openai = g.compile(grader, "openai")
    assert "pass_threshold" not in openai
    assert "pass_threshold=5.0 dropped for openai" in caplog.text
    multi = g.from_openai({**GUIDE["multigrader_with_pass_threshold"], "pass_threshold": 0.5})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rlft.graders"):
        azure = g.compile(multi, "azure")
    assert "pass_threshold" not in azure  # Azure documents it on text_similarity/score_model only
    assert azure["graders"]["name"]["pass_threshold"] == 0.9  # kept on the text_similarity
    assert "pass_threshold=0.5 dropped for azure" in caplog.text
    assert g.compile(multi, "local").pass_threshold == 0.5  # type: ignore[union-attr]


async def test_microsofts_countdown_judge_grades_locally_with_pass_fail() -> None:
    grader = g.load(UPSTREAM / "microsoft_countdown_grader_config_aoai.json")
    row = COUNTDOWN_ROWS[0]
    item = {k: v for k, v in row.items() if k != "messages"}
    answer = '{"expression": "98 - 58 + 48 - 35", "result": "53"}'
    full = await grader.grade(answer, item, judge=ScriptedJudge('{"result": 5, "steps": []}'))
    assert (full.score, full.passed) == (5.0, True)
    part = await grader.grade(answer, item, judge=ScriptedJudge('{"result": 4, "steps": []}'))
    assert (part.score, part.passed) == (4.0, False)


async def test_microsofts_python_grader_without_a_name_loads_and_scores(
    pool: SandboxPool,
) -> None:
    grader = g.load(UPSTREAM / "microsoft_countdown_python_grader.json")
    assert isinstance(grader, g.Python) and grader.name == "python"  # derived from its type
    assert g.compile(grader, "openai")["name"] == "python"  # the FT schema requires a name
    row = COUNTDOWN_ROWS[0]  # target 73 from [48, 58, 35, 98]
    item = {k: v for k, v in row.items() if k != "messages"}
    exact = '{"expression": "98 - 58 + 48 - 35 + 20", "result": "73"}'  # uses 20: wrong numbers
    assert (await grader.grade(exact, item, pool=pool)).score == 0.0
    right = '{"expression": "(98 - 58) + (48 - 35) + 0", "result": "53"}'
    assert (await grader.grade(right, item, pool=pool)).score == 0.0  # a stray 0: still wrong
    close = '{"expression": "98 - 58 + 35 - 48", "result": "27"}'
    assert (await grader.grade(close, item, pool=pool)).score == 2.0  # valid, off by > 5


@pytest.mark.parametrize("key", sorted(EXAMPLES))
@pytest.mark.parametrize("target", ["openai", "azure", "local", "trl", "bedrock"])
def test_the_guides_examples_load_and_compile(key: str, target: str) -> None:
    data = EXAMPLES[key]
    grader = g.from_openai(data)
    if key.startswith("label_model") and target in ("openai", "azure"):
        grader = g.Multi(name="m", graders={"label": grader}, calculate_output="label")
    g.compile(grader, target)


def test_the_guides_grader_forms_round_trip() -> None:
    python = g.from_openai(GUIDE["python_without_name"])
    assert python.name == "python" and "WRatio" in python.source  # type: ignore[union-attr]
    multi = g.from_openai(GUIDE["multigrader_with_pass_threshold"])
    assert multi.name == "multi"  # type: ignore[union-attr]
    label = g.from_openai(FORMS["label_model_single_part_content"])
    assert isinstance(label, g.LabelModel)
    assert label.to_dict()["input"] == FORMS["label_model_single_part_content"]["input"]
    paths = [path for path, _ in label.templates()]
    assert paths == ["input[0].content.text", "input[1].content[0]", "input[1].content[1].text"]


def test_sub_graders_without_names_are_named_by_their_key() -> None:
    multi = g.from_openai(
        {
            "type": "multi",
            "graders": {
                "exact": {"type": "string_check", "input": "a", "reference": "b", "operation": "eq"}
            },
            "calculate_output": "exact",
        }
    )
    assert multi.graders["exact"].name == "exact"  # type: ignore[union-attr]


async def test_every_content_form_reaches_the_judge_as_text() -> None:
    judge = ScriptedJudge('{"result": "positive"}')
    label = g.from_openai(FORMS["label_model_single_part_content"])
    result = await label.grade("I love it", judge=judge)
    assert (result.score, result.errors) == (1.0, ())
    assert judge.requests[0].messages == [
        {"role": "system", "content": "Classify the sentiment of the text."},
        {"role": "user", "content": "Statement: I love it"},
    ]


async def test_pass_threshold_on_a_sub_grader_is_a_sub_result() -> None:
    multi = g.from_openai(GUIDE["multigrader_with_pass_threshold"])
    item = {"name": "John Doe", "email": "john.doe@gmail.com"}
    sample = '{"name": "john doe", "email": "jon.doe@gmail.com"}'
    result = await multi.grade(sample, item)
    assert result.sub_results["name"].passed is True  # fuzzy 1.0 >= 0.9 (case ignored)
    assert result.sub_results["email"].passed is None  # no threshold on the string check
    assert result.passed is None  # the multi itself has no threshold
    assert result.score == pytest.approx(0.5)  # "(name + email) / 2", the email wrong


def test_the_lambda_reports_pass_fail_as_metrics(load_lambda: Any) -> None:
    multi = g.from_openai(GUIDE["multigrader_with_pass_threshold"])
    handler = load_lambda(multi).lambda_handler
    messages = [
        {"role": "user", "content": "card?"},
        {"role": "assistant", "content": '{"name": "Ada", "email": "a@b"}'},
    ]
    event = [{"id": "x", "messages": messages, "name": "ada", "email": "a@b"}]
    metrics = {m["name"]: m["value"] for m in handler(event, None)[0]["metrics_list"]}
    assert metrics["name_passed"] == 1.0 and "multi_passed" not in metrics


async def test_the_guides_python_grader_agrees_with_fuzzy_match(pool: SandboxPool) -> None:
    # The guide's python example is fuzz.WRatio + default_process: rlft's fuzzy_match.
    python = g.from_openai(GUIDE["python_without_name"])
    similar = g.TextSimilarity(
        input="{{ sample.output_text }}",
        reference="{{ item.reference_answer }}",
        evaluation_metric="fuzzy_match",
    )
    item = {"reference_answer": "fuzzy wuzzy had no hair"}  # the guide's run example
    for sample in ("fuzzy wuzzy was a bear", "FUZZY WUZZY HAD NO HAIR!", "no"):
        by_code = await python.grade(sample, item, pool=pool)
        assert by_code.ok and by_code.score == (await similar.grade(sample, item)).score


async def test_the_guides_tool_call_grader_reads_output_tools() -> None:
    grader = g.from_openai(GUIDE["tool_call_multigrader"])
    call = {
        "type": "function",
        "function": {"name": "get_acceptors", "arguments": '{"smiles": "CCO"}'},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = await grader.grade(message, {"smiles": "CCO"})
    assert (result.score, result.errors) == (1.0, ())


def test_audio_and_image_parts_are_templates_too() -> None:
    judge = g.ScoreModel(
        name="j",
        model="gpt-audio",
        input=[
            g.Message(
                role="user",
                content=[
                    {"type": "input_image", "image_url": "{{ item.picture }}"},
                    {
                        "type": "input_audio",
                        "input_audio": {"data": "{{ item.clip }}", "format": "wav"},
                    },
                ],
            )
        ],
    )
    assert [ref.grader_path for ref in g.item_references(judge)] == [
        "input[0].content[0].image_url",
        "input[0].content[1].input_audio.data",
    ]
