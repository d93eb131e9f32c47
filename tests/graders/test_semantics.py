"""The semantics docs/graders.md settles, one test each (issue 14, item 4; issue 14, item 3).

Sources: OpenAI's graders guide (the python grader's ``sample`` shape; the ``fuzzy_match``
python example), reference/upstream_facts.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from rapidfuzz import fuzz, utils

from rlft import graders as g
from rlft.graders._sandbox.pool import SandboxPool

pytestmark = pytest.mark.anyio


def similar(metric: str, reference: str = "{{ item.ref }}") -> g.TextSimilarity:
    return g.TextSimilarity(
        name="s",
        input="{{ sample.output_text }}",
        reference=reference,
        evaluation_metric=metric,  # type: ignore[arg-type]
    )


JSON_PROBE = g.Python(
    name="probe",
    source=(
        "def grade(sample, item):\n"
        "    data = sample['output_json']\n"
        "    assert isinstance(data, dict), type(data)\n"
        "    return float(data.get('score', -1))\n"
    ),
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"score": 0.5}', 0.5),
        ("plain text", -1.0),  # not JSON: {} (OpenAI's documented sample shape)
        ("null", -1.0),  # JSON null is not an object either
        ("[1, 2]", -1.0),
        ("3", -1.0),
        ('"text"', -1.0),
    ],
)
async def test_python_graders_see_an_object_or_empty_output_json(
    pool: SandboxPool, output: str, expected: float
) -> None:
    result = await JSON_PROBE.grade(output, pool=pool)
    assert (result.score, result.errors) == (expected, ())


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("plain text", "not valid JSON"),
        ("null", "JSON null, not a JSON object"),
        ("[1]", "JSON an array, not a JSON object"),
    ],
)
async def test_templates_reading_output_json_of_a_non_object_fail_with_sample_parse(
    output: str, why: str
) -> None:
    grader = g.StringCheck(
        name="c", input="{{ sample.output_json.label }}", reference="x", operation="eq"
    )
    result = await grader.grade(output)
    assert (result.score, result.errors) == (0.0, ("sample_parse",))
    assert why in (result.reason or "")
    whole = g.StringCheck(name="c", input="{{ sample.output_json }}", reference="x", operation="eq")
    assert (await whole.grade(output)).errors == ("sample_parse",)


async def test_the_output_null_is_text_like_any_other() -> None:
    text = g.StringCheck(
        name="c", input="{{ sample.output_text }}", reference="null", operation="eq"
    )
    assert (await text.grade("null")).score == 1.0
    assert (await text.grade({"output_text": "null"})).score == 1.0


@pytest.mark.parametrize("text", ["Paris", "New York", "a b c", "The cat sat on the mat."])
async def test_bleu_gleu_and_rouge_of_a_text_against_itself_is_1(text: str) -> None:
    for metric in (
        "bleu",
        "gleu",
        "rouge_1",
        "rouge_2",
        "rouge_3",
        "rouge_4",
        "rouge_5",
        "rouge_l",
    ):
        result = await similar(metric).grade(text, {"ref": text})
        assert result.score == pytest.approx(1.0), metric


async def test_bleu_of_a_wholly_wrong_short_answer_is_0() -> None:
    assert (await similar("bleu").grade("London", {"ref": "Paris"})).score == 0.0


async def test_rouge_n_on_texts_shorter_than_n_uses_the_shorter_length() -> None:
    # "Paris" vs "Paris is nice" under rouge_2: one token, so unigram F = 2 * 1 * 1/3 / (4/3).
    result = await similar("rouge_2").grade("Paris", {"ref": "Paris is nice"})
    assert result.score == pytest.approx(0.5)
    assert (await similar("rouge_3").grade("Lyon", {"ref": "Paris"})).score == 0.0


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("巴黎是法国的首都", "巴黎是法国的首都", 1.0),
        ("巴黎", "巴黎是首都", 2 * 1.0 * 0.4 / 1.4),  # 2 of 5 characters, all of the output's
        ("Москва столица", "Москва столица России", 2 * 1.0 * (2 / 3) / (1 + 2 / 3)),
        ("東京", "大阪", 0.0),
    ],
)
async def test_rouge_on_non_latin_scripts(output: str, reference: str, expected: float) -> None:
    result = await similar("rouge_1").grade(output, {"ref": reference})
    assert result.score == pytest.approx(expected)


async def test_rouge_on_ascii_is_rouge_scores_own_tokenizer() -> None:
    from rouge_score import rouge_scorer

    hyp, ref = "Hello, World_2! it's 3.5", "hello world 2 its 35 extra"
    expected = rouge_scorer.RougeScorer(["rouge1"]).score(ref, hyp)["rouge1"].fmeasure
    assert (await similar("rouge_1").grade(hyp, {"ref": ref})).score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("output", "reference"),
    [("PARIS", "paris"), ("Paris.", "paris"), ("  the Eiffel tower ", "The Eiffel Tower")],
)
async def test_fuzzy_match_is_the_guides_wratio_and_ignores_case(
    output: str, reference: str
) -> None:
    result = await similar("fuzzy_match").grade(output, {"ref": reference})
    expected = fuzz.WRatio(output, reference, processor=utils.default_process) / 100
    assert result.score == pytest.approx(expected) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("output", "reference", "passed"),
    [
        ("STRASSE", "straße", True),  # str.casefold(): ß folds to ss
        ("ΟΔΟΣ", "οδος", True),  # final sigma folds like sigma
        ("Billing dept", "BILLING", True),
        ("billing", "bill ing", False),
    ],
)
async def test_ilike_is_a_casefold_substring_test(
    output: str, reference: str, passed: bool
) -> None:
    grader = g.StringCheck(
        name="c", input="{{ sample.output_text }}", reference="{{ item.ref }}", operation="ilike"
    )
    assert (await grader.grade(output, {"ref": reference})).score == float(passed)


FEW_SHOT: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer with a number."},
    {"role": "user", "content": "2 + 2?"},
    {"role": "assistant", "content": "4"},  # a few-shot example inside the prompt
    {"role": "user", "content": "6 x 7?"},
]
EXACT = g.StringCheck(
    name="c", input="{{ sample.output_text }}", reference="{{ item.ref }}", operation="eq"
)


async def test_a_few_shot_assistant_turn_in_the_prompt_is_never_graded() -> None:
    result = await EXACT.grade(FEW_SHOT, {"ref": "4"})
    assert (result.score, result.errors) == (0.0, ("sample_parse",))
    assert "no model answer" in (result.reason or "")
    answered = [*FEW_SHOT, {"role": "assistant", "content": "42"}]
    assert (await EXACT.grade(answered, {"ref": "42"})).score == 1.0
    with_tool = [
        *FEW_SHOT,
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "42"},
    ]
    assert (await EXACT.grade(with_tool, {"ref": "42"})).score == 1.0


async def test_completions_without_roles_grade_the_last_message() -> None:
    assert (await EXACT.grade([{"content": "42"}], {"ref": "42"})).score == 1.0
