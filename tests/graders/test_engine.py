"""The local engine: each grader type's semantics, and failing closed on every bad input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.gleu_score import sentence_gleu
from rapidfuzz import fuzz, utils
from rouge_score import rouge_scorer

from rlft import graders as g
from rlft.exceptions import UsageError
from rlft.graders._runtime import metrics as _metrics
from rlft.graders._sandbox.pool import SandboxPool

from .conftest import ScriptedJudge

pytestmark = pytest.mark.anyio


def check(operation: str, reference: str = "{{ item.ref }}") -> g.StringCheck:
    return g.StringCheck(
        name="c",
        input="{{ sample.output_text }}",
        reference=reference,
        operation=operation,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("operation", "output", "reference", "score"),
    [
        ("eq", "Billing", "Billing", 1.0),
        ("eq", "billing", "Billing", 0.0),  # case-sensitive
        ("eq", "Billing ", "Billing", 0.0),  # no trimming
        ("ne", "billing", "Billing", 1.0),
        ("ne", "Billing", "Billing", 0.0),
        ("like", "it is Billing.", "Billing", 1.0),  # contains
        ("like", "it is billing.", "Billing", 0.0),
        ("like", "100% sure", "1_0%", 0.0),  # no SQL wildcards
        ("ilike", "IT IS BILLING", "billing", 1.0),
        ("ilike", "Straße", "STRASSE", 1.0),  # casefold, not lower
        ("ilike", "account", "billing", 0.0),
    ],
)
async def test_string_check(operation: str, output: str, reference: str, score: float) -> None:
    result = await check(operation).grade(output, {"ref": reference})
    assert (result.score, result.errors) == (score, ())


HYP = "the quick brown fox jumps over the lazy dog today"
REF = "yesterday the quick brown fox jumps over a lazy dog"


def tokens(text: str) -> list[str]:
    return text.split()  # these sentences have no punctuation: same as the engine's tokenizer


def rouge(kind: str) -> float:
    return float(rouge_scorer.RougeScorer([kind]).score(REF, HYP)[kind].fmeasure)


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("fuzzy_match", fuzz.WRatio(HYP, REF, processor=utils.default_process) / 100),
        (
            "bleu",
            sentence_bleu(
                [tokens(REF)], tokens(HYP), smoothing_function=SmoothingFunction().method1
            ),
        ),
        ("gleu", sentence_gleu([tokens(REF)], tokens(HYP))),
        ("rouge_1", rouge("rouge1")),
        ("rouge_2", rouge("rouge2")),
        ("rouge_3", rouge("rouge3")),
        ("rouge_4", rouge("rouge4")),
        ("rouge_5", rouge("rouge5")),
        ("rouge_l", rouge("rougeL")),
    ],
)
async def test_text_similarity_is_the_library_value(metric: str, expected: float) -> None:
    grader = g.TextSimilarity(
        name="s",
        input="{{ sample.output_text }}",
        reference="{{ item.ref }}",
        evaluation_metric=metric,  # type: ignore[arg-type]
    )
    result = await grader.grade(HYP, {"ref": REF})
    assert result.ok and 0.0 < result.score < 1.0
    assert result.score == pytest.approx(expected)
    same = await grader.grade(REF, {"ref": REF})
    assert same.score == pytest.approx(1.0)


async def test_rouge_l_known_value() -> None:
    # LCS "the cat sat" = 3 tokens; precision 3/6, recall 3/3 -> F = 2/3.
    grader = g.TextSimilarity(
        name="s",
        input="{{ sample.output_text }}",
        reference="the cat sat",
        evaluation_metric="rouge_l",
    )
    assert (await grader.grade("The cat sat on the mat")).score == pytest.approx(2 / 3)


async def test_meteor_without_wordnet_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nltk

    def missing(resource: str) -> None:
        raise LookupError(resource)

    monkeypatch.setattr(nltk.data, "find", missing)
    grader = g.TextSimilarity(
        name="s", input="{{ sample.output_text }}", reference="x", evaluation_metric="meteor"
    )
    result = await grader.grade("x")
    assert (result.score, result.errors) == (0.0, ("metric_unavailable",))
    assert "python -m nltk.downloader wordnet omw-1.4" in (result.reason or "")


class NoSynonyms:
    """A WordNet stand-in without synonyms: METEOR then matches exact words and stems."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


async def test_meteor_is_nltks_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from nltk.translate.meteor_score import meteor_score

    monkeypatch.setattr(_metrics, "_wordnet", lambda: NoSynonyms())
    grader = g.TextSimilarity(
        name="s", input="{{ sample.output_text }}", reference=REF, evaluation_metric="meteor"
    )
    result = await grader.grade(HYP)
    expected = meteor_score([tokens(REF)], tokens(HYP), wordnet=NoSynonyms())
    assert result.ok and result.score == pytest.approx(expected) and 0 < expected < 1


class Embedder:
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "cat" in t else [1.0, 1.0] for t in texts]


async def test_cosine_needs_an_embedder() -> None:
    grader = g.TextSimilarity(
        name="s", input="{{ sample.output_text }}", reference="cat", evaluation_metric="cosine"
    )
    missing = await grader.grade("dog")
    assert missing.errors == ("metric_unavailable",) and "embedder" in (missing.reason or "")
    assert (await grader.grade("cat", embedder=Embedder())).score == pytest.approx(1.0)
    assert (await grader.grade("dog", embedder=Embedder())).score == pytest.approx(1 / math.sqrt(2))


TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "refund", "arguments": "{}"}}


@pytest.mark.parametrize(
    "sample",
    [
        '{"label": "billing"}',
        {"output_text": '{"label": "billing"}'},
        {"output_json": {"label": "billing"}},
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": '{"label": "billing"}'}}
            ]
        },
        {"role": "assistant", "content": [{"type": "text", "text": '{"label": "billing"}'}]},
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": '{"label": "billing"}'},
        ],
        [{"role": "nova_assistant", "content": '{"label": "billing"}'}],
    ],
    ids=["text", "output_text", "output_json", "choices", "message", "conversation", "nova"],
)
async def test_every_sample_shape(sample: Any) -> None:
    grader = g.StringCheck(
        name="c",
        input="{{ sample.output_json.label }}",
        reference="{{ item.label }}",
        operation="eq",
    )
    assert (await grader.grade(sample, {"label": "billing"})).score == 1.0


async def test_tool_calls_are_output_tools() -> None:
    grader = g.StringCheck(
        name="c",
        input="{{ sample.output_tools[0].function.name }}",
        reference="refund",
        operation="eq",
    )
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    assert (await grader.grade(message)).score == 1.0
    no_tools = await grader.grade("plain text")
    assert no_tools.errors == ("invalid_variable",)


@pytest.mark.parametrize("sample", [42, None, b"bytes", {"unexpected": 1}, []])
async def test_unreadable_samples_fail_closed(sample: Any) -> None:
    result = await check("eq").grade(sample, {"ref": "x"})
    assert (result.score, result.errors) == (0.0, ("sample_parse",))


async def test_missing_variable_fails_closed() -> None:
    result = await check("ne").grade("anything", {"other": 1})  # ne would pass: it must not
    assert (result.score, result.errors) == (0.0, ("invalid_variable",))
    assert "item has no field 'ref'" in (result.reason or "")
    bad_item = await check("eq").grade("x", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert bad_item.errors == ("sample_parse",)


LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
WHY = g.TextSimilarity(
    name="why",
    input="{{ sample.output_json.why }}",
    reference="{{ item.why }}",
    evaluation_metric="rouge_1",
)


async def test_multi_combines_sub_scores() -> None:
    grader = g.Multi(
        name="m", graders={"label": LABEL, "why": WHY}, calculate_output="0.8 * label + 0.2 * why"
    )
    result = await grader.grade('{"label": "a", "why": "x y"}', {"label": "a", "why": "x z"})
    assert result.sub_scores == {"label": 1.0, "why": 0.5}
    assert result.score == pytest.approx(0.9) and result.ok
    assert set(result.sub_results) == {"label", "why"} and result.sub_results["why"].ok


async def test_a_failed_sub_grader_scores_0_and_the_formula_still_runs() -> None:
    # As on OpenAI: the failed sub-grader is 0 in the formula, and its error is recorded.
    grader = g.Multi(name="m", graders={"label": LABEL}, calculate_output="0.5 + 0.5 * label")
    result = await grader.grade('{"no_label": 1}', {"label": "a"})
    assert (result.score, result.errors) == (0.5, ("invalid_variable",))
    assert result.sub_scores == {"label": 0.0}
    assert result.sub_results["label"].errors == ("invalid_variable",)
    assert "label" in (result.reason or "") and "scored 0" in (result.reason or "")


async def test_a_raising_python_sub_grader_inside_multi(pool: SandboxPool) -> None:
    raises = g.Python(name="code", source="def grade(sample, item):\n    raise SystemExit(3)\n")
    ok = g.Python(name="ok", source="def grade(sample, item):\n    return 0.75\n")
    grader = g.Multi(
        name="m", graders={"code": raises, "ok": ok}, calculate_output="0.5 * code + ok"
    )
    result = await grader.grade("anything", pool=pool)
    assert result.score == 0.75 and result.sub_scores == {"code": 0.0, "ok": 0.75}
    assert result.errors == ("python_runtime",)


async def test_multi_fails_as_a_whole_only_when_the_formula_fails() -> None:
    grader = g.Multi(name="m", graders={"label": LABEL}, calculate_output="1 / label")
    result = await grader.grade('{"no_label": 1}', {"label": "a"})  # label 0 -> 1/0
    assert (result.score, result.errors) == (0.0, ("formula", "invalid_variable"))


BAD_PYTHON: list[tuple[str, str, str]] = [
    ("raises", "def grade(sample, item):\n    raise ValueError('boom')\n", "python_runtime"),
    ("nan", "def grade(sample, item):\n    return float('nan')\n", "python_invalid_return"),
    ("inf", "def grade(sample, item):\n    return float('inf')\n", "python_invalid_return"),
    ("string", "def grade(sample, item):\n    return '1.0'\n", "python_invalid_return"),
    ("none", "def grade(sample, item):\n    pass\n", "python_invalid_return"),
    ("bool", "def grade(sample, item):\n    return True\n", "python_invalid_return"),
    ("loop", "def grade(sample, item):\n    while True:\n        pass\n", "timeout"),
    ("exit", "import os\ndef grade(sample, item):\n    os._exit(3)\n", "python_runtime"),
    (
        "memory",
        "def grade(sample, item):\n    x = bytearray(4 << 30)\n    return 1.0\n",
        "python_runtime",
    ),
]


@pytest.mark.parametrize(("case", "source", "kind"), BAD_PYTHON, ids=[c for c, _, _ in BAD_PYTHON])
async def test_python_grader_fails_closed_and_the_pool_keeps_serving(
    pool: SandboxPool, case: str, source: str, kind: str
) -> None:
    result = await g.Python(name="p", source=source).grade("x", {}, pool=pool)
    assert (result.score, result.errors) == (0.0, (kind,)), result.reason
    assert result.reason
    good = g.Python(name="ok", source="def grade(sample, item):\n    return item['v'] * 2\n")
    assert (await good.grade("x", {"v": 0.25}, pool=pool)).score == 0.5


async def test_python_grader_that_prints_megabytes_still_scores(pool: SandboxPool) -> None:
    source = "def grade(sample, item):\n    print('x' * 5_000_000)\n    return 0.75\n"
    result = await g.Python(name="p", source=source).grade("x", {}, pool=pool)
    assert (result.score, result.errors) == (0.75, ())


async def test_python_grader_sees_the_normalised_sample(pool: SandboxPool) -> None:
    source = (
        "def grade(sample, item):\n"
        "    assert sample['output_json'] == {'a': 1}\n"
        "    assert sample['choices'][0]['message']['content'] == sample['output_text']\n"
        "    return float(len(sample['output_tools']) + item['k'])\n"
    )
    result = await g.Python(name="p", source=source).grade('{"a": 1}', {"k": 0.5}, pool=pool)
    assert (result.score, result.errors) == (0.5, ()), result.reason


def judge_grader(**extra: Any) -> g.ScoreModel:
    return g.ScoreModel(
        name="judge",
        model="gpt-4.1",
        input=[
            g.Message(role="developer", content="Rubric: {{ item.rubric }}"),
            g.Message(role="user", content="Answer: {{ sample.output_text }}"),
        ],
        **extra,
    )


@pytest.mark.parametrize(
    ("reply", "score", "errors"),
    [
        ('{"steps": [{"description": "d", "conclusion": "good"}], "result": 0.7}', 0.7, ()),
        ('{"steps": [], "result": 7}', 1.0, ()),  # clamped to the default range [0, 1]
        ('{"steps": [], "result": -3}', 0.0, ()),
        ("0.4", 0.4, ()),  # a bare number
        ('Sure! {"result": 0.25, "steps": []} hope that helps', 0.25, ()),
        ("I'd say seven out of ten", 0.0, ("model_parse",)),
        ('{"result": "NaN", "steps": []}', 0.0, ("model_parse",)),
        ('{"result": true, "steps": []}', 0.0, ("model_parse",)),
        ("<fail>", 0.0, ("model_server",)),
    ],
)
async def test_score_model(reply: str, score: float, errors: tuple[str, ...]) -> None:
    judge = ScriptedJudge(reply)
    result = await judge_grader().grade("forty-two", {"rubric": "is it 42?"}, judge=judge)
    assert (result.score, result.errors) == (score, errors)
    request = judge.requests[0]
    assert request.model == "gpt-4.1"
    assert request.messages == [  # rendered, and developer -> system for every server
        {"role": "system", "content": "Rubric: is it 42?"},
        {"role": "user", "content": "Answer: forty-two"},
    ]
    assert request.schema["required"] == ["steps", "result"]


async def test_score_model_range_and_sampling_params() -> None:
    judge = ScriptedJudge('{"steps": [], "result": 12}')
    grader = judge_grader(range=(0, 10), sampling_params={"temperature": 0, "seed": 3})
    assert (await grader.grade("x", {"rubric": "r"}, judge=judge)).score == 10.0
    assert judge.requests[0].sampling == {"temperature": 0.0, "seed": 3}


async def test_model_grader_with_a_missing_variable_never_calls_the_judge() -> None:
    judge = ScriptedJudge('{"result": 1, "steps": []}')
    result = await judge_grader().grade("x", {}, judge=judge)
    assert result.errors == ("invalid_variable",) and judge.requests == []


@pytest.mark.parametrize(
    ("reply", "score", "errors"),
    [
        ('{"result": "polite"}', 1.0, ()),
        ('{"result": "rude"}', 0.0, ()),
        ("neutral", 1.0, ()),
        ('{"result": "polite, neutral, rude"}', 0.0, ("model_parse",)),  # all labels at once
        ("", 0.0, ("model_parse",)),
    ],
)
async def test_label_model(reply: str, score: float, errors: tuple[str, ...]) -> None:
    grader = g.LabelModel(
        name="tone",
        model="gpt-4o",
        input=[g.Message(role="user", content="{{ sample.output_text }}")],
        labels=["polite", "neutral", "rude"],
        passing_labels=["polite", "neutral"],
    )
    judge = ScriptedJudge(reply)
    result = await grader.grade("thanks!", judge=judge)
    assert (result.score, result.errors) == (score, errors)
    assert judge.requests[0].schema["properties"]["result"]["enum"] == ["polite", "neutral", "rude"]


class CountingJudge:
    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: g.JudgeRequest) -> g.JudgeResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await anyio.sleep(0.01)
        self.in_flight -= 1
        text = request.messages[-1]["content"].removeprefix("Answer: ")
        return g.JudgeResponse(text=f'{{"steps": [], "result": {text}}}')


async def test_grade_many_keeps_order_and_bounds_concurrency() -> None:
    judge = CountingJudge()
    samples = [str(i / 40) for i in range(40)]
    results = await g.grade_many(
        judge_grader(), samples, [{"rubric": "r"}] * 40, concurrency=3, judge=judge
    )
    assert [r.score for r in results] == [pytest.approx(i / 40) for i in range(40)]
    assert judge.peak == 3


async def test_grade_many_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match="2 samples but 1 items"):
        await g.grade_many(check("eq"), ["a", "b"], [{"ref": "a"}])
    with pytest.raises(UsageError, match="concurrency"):
        await g.grade_many(check("eq"), ["a"], concurrency=0)
    results = await g.grade_many(check("eq", reference="a"), ["a", "b"])
    assert [r.score for r in results] == [1.0, 0.0]


async def test_native_graders_grade_locally_only_when_rlft_understands_them() -> None:
    openai = g.Native(
        name="n",
        target="openai",
        payload={
            "type": "string_check",
            "name": "n",
            "input": "{{ sample.output_text }}",
            "reference": "x",
            "operation": "eq",
        },
    )
    assert (await openai.grade("x")).score == 1.0
    bedrock = g.Native(
        name="n",
        target="bedrock",
        payload={"lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:f"},
    )
    result = await bedrock.grade("x")
    assert result.errors == ("unsupported",) and "only on" in (result.reason or "")
    broken = g.Native(name="n", target="openai", payload={"type": "string_check", "name": "n"})
    assert (await broken.grade("x")).errors == ("other",)
