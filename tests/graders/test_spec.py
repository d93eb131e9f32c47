"""The neutral spec: building, validating, loading, saving and OpenAI JSON round trips."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rlft import graders as g
from rlft.exceptions import GraderNotSupportedError, GraderValidationError, UsageError
from rlft.graders._sandbox.pool import SandboxPool

pytestmark = pytest.mark.anyio

STRING_CHECK = {
    "type": "string_check",
    "name": "label_match",
    "input": "{{ sample.output_json.label }}",
    "reference": "{{ item.label }}",
    "operation": "eq",
}
TEXT_SIMILARITY = {
    "type": "text_similarity",
    "name": "summary",
    "input": "{{sample.output_text}}",
    "reference": "{{item.summary}}",
    "evaluation_metric": "rouge_l",
}
LABEL_MODEL = {
    "type": "label_model",
    "name": "tone",
    "model": "gpt-4o-2024-08-06",
    "input": [
        {"role": "developer", "content": "Classify the tone of the answer."},
        {"role": "user", "content": "{{ sample.output_text }}"},
    ],
    "labels": ["polite", "neutral", "rude"],
    "passing_labels": ["polite", "neutral"],
}
# Shapes from reference/openai_azure.md §2.2-2.7 (OpenAI guide, spec and Azure samples).
OPENAI_EXAMPLES: list[dict[str, Any]] = [
    STRING_CHECK,
    {**STRING_CHECK, "name": "contains", "operation": "ilike"},
    TEXT_SIMILARITY,
    {**TEXT_SIMILARITY, "name": "fuzzy", "evaluation_metric": "fuzzy_match"},
    {
        "type": "python",
        "name": "numeric",
        "source": "def grade(sample, item) -> float:\n"
        "    return 1.0 if sample['output_text'] == item['answer'] else 0.0\n",
        "image_tag": "2025-05-08",
    },
    {
        "type": "score_model",
        "name": "judge",
        "model": "gpt-4.1-2025-04-14",
        "input": [
            {"role": "system", "content": "Score the answer from 0 to 10 against the rubric."},
            {
                "role": "user",
                "content": "Rubric: {{ item.rubric }}\nAnswer: {{ sample.output_text }}",
            },
        ],
        "range": [0, 10],
        "sampling_params": {"temperature": 0, "seed": 42, "max_completions_tokens": 512},
    },
    {
        "type": "score_model",
        "name": "vision",
        "model": "gpt-4.1-mini-2025-04-14",
        "input": [
            {
                "role": "user",
                "type": "message",
                "content": [
                    {"type": "input_text", "text": "Does {{ sample.output_text }} describe it?"},
                    {"type": "input_image", "image_url": "{{ item.image_url }}", "detail": "low"},
                ],
            }
        ],
    },
    {
        "type": "multi",
        "name": "clause",
        "graders": {"match": STRING_CHECK, "sim": TEXT_SIMILARITY, "tone": LABEL_MODEL},
        "calculate_output": "0.5 * match + 0.25 * sim + 0.25 * tone",
    },
]


@pytest.mark.parametrize("example", OPENAI_EXAMPLES, ids=lambda e: e["name"])
def test_openai_examples_round_trip(example: dict[str, Any]) -> None:
    original = copy.deepcopy(example)
    grader = g.from_openai(example)
    assert example == original  # not mutated
    assert grader.to_openai() == example
    assert g.compile(grader, "openai") == example
    assert g.compile(grader, "azure") == example
    assert g.compile(example, "openai") == example  # compile takes the JSON too
    assert g.from_openai(json.loads(json.dumps(grader.to_openai()))) == grader


def test_grader_is_a_discriminated_union_field() -> None:
    class Holder(BaseModel):
        grader: g.Grader

    holder = Holder.model_validate({"grader": OPENAI_EXAMPLES[-1]})
    assert isinstance(holder.grader, g.Multi)
    assert isinstance(holder.grader.graders["tone"], g.LabelModel)
    assert Holder(grader=g.from_openai(STRING_CHECK)).grader.type == "string_check"


def test_graders_are_frozen_keyword_only_and_picklable() -> None:
    grader = g.from_openai(STRING_CHECK)
    with pytest.raises(Exception, match="frozen"):
        grader.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        g.StringCheck("name", "x", "y", "eq")  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(grader)) == grader


def test_multi_accepts_the_list_form_of_openais_types() -> None:
    grader = g.from_openai(
        {"type": "multi", "name": "m", "graders": [STRING_CHECK], "calculate_output": "label_match"}
    )
    assert isinstance(grader, g.Multi) and list(grader.graders) == ["label_match"]


def test_subclass_from_openai_checks_the_type() -> None:
    assert isinstance(g.StringCheck.from_openai(STRING_CHECK), g.StringCheck)
    assert isinstance(g.BaseGrader.from_openai(TEXT_SIMILARITY), g.TextSimilarity)
    with pytest.raises(GraderValidationError, match="expected a StringCheck"):
        g.StringCheck.from_openai(TEXT_SIMILARITY)


def _python(source: str) -> dict[str, Any]:
    return {"type": "python", "name": "p", "source": source}


def _multi(formula: str, **graders: Any) -> dict[str, Any]:
    return {
        "type": "multi",
        "name": "m",
        "graders": graders or {"a": STRING_CHECK},
        "calculate_output": formula,
    }


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("op", {**STRING_CHECK, "operation": "contains"}, "operation", "not one of 'eq'"),
    ("neq", {**STRING_CHECK, "operation": "neq"}, "operation", "spelt 'ne'"),
    (
        "metric",
        {**TEXT_SIMILARITY, "evaluation_metric": "rouge-l"},
        "evaluation_metric",
        "did you mean 'rouge_l'",
    ),
    (
        "metric2",
        {**TEXT_SIMILARITY, "evaluation_metric": "levenshtein"},
        "evaluation_metric",
        "not one of",
    ),
    ("empty name", {**STRING_CHECK, "name": "  "}, "name", "name is empty"),
    ("null name", {**STRING_CHECK, "name": None}, "name", "valid string"),
    (
        "namespace",
        {**STRING_CHECK, "input": "{{ output.text }}"},
        "input",
        "unknown template namespace 'output'",
    ),
    ("unclosed", {**STRING_CHECK, "reference": "{{ item.label"}, "reference", "never closed"),
    ("malformed", {**STRING_CHECK, "reference": "{{ item.a-b + 1 }}"}, "reference", "malformed"),
    ("no grade", _python("def score(sample, item):\n    return 1\n"), "source", "grade"),
    ("syntax", _python("def grade(sample, item)\n    return 1\n"), "source", "line 1"),
    ("arity", _python("def grade(sample):\n    return 1\n"), "source", "two"),
    ("huge", _python("def grade(s, i):\n    return 1\n" + "#" * 300_000), "source", "limit"),
    ("injection", _multi("a + __import__('os').getpid()"), "calculate_output", "not allowed"),
    ("unknown key", _multi("a + b"), "calculate_output", "unknown name 'b'"),
    ("nested", _multi("a", a=_multi("x")), "graders", "cannot be nested"),
    ("bad key", _multi("a", **{"a b": STRING_CHECK}), "graders", "must be a name"),
    (
        "sub path",
        _multi("a", a={**STRING_CHECK, "operation": "x"}),
        "graders.a.operation",
        "not one of",
    ),
    ("passing", {**LABEL_MODEL, "passing_labels": ["angry"]}, "", "not in labels"),
    ("range", {**OPENAI_EXAMPLES[5], "range": [1, 0]}, "range", "min < max"),
    (
        "typo",
        {**OPENAI_EXAMPLES[5], "sampling_params": {"max_completion_tokens": 5}},
        "sampling_params",
        "max_completions_tokens",
    ),
    (
        "threshold on a string check",
        {**STRING_CHECK, "pass_threshold": 0.5},
        "pass_threshold",
        "read on text_similarity, python, score_model and multi",
    ),
    ("unknown field", {**STRING_CHECK, "operator": "eq"}, "operator", "unknown field"),
    ("type", {**STRING_CHECK, "type": "regex"}, "type", "unknown grader type 'regex'"),
    (
        "native target",
        {"type": "native", "name": "n", "target": "Not An Id!", "payload": {"type": "x"}},
        "target",
        "pattern",
    ),
]


@pytest.mark.parametrize(("case", "data", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_graders_fail_at_build_time_naming_the_field(
    case: str, data: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(GraderValidationError, match=message) as info:
        g.from_openai(data)
    assert info.value.path == path
    if path:
        assert str(info.value).startswith(f"{path}: ")


def test_constructors_raise_grader_errors_too() -> None:
    with pytest.raises(GraderValidationError, match="spelt 'ne'") as info:
        g.StringCheck(name="x", input="a", reference="b", operation="neq")  # type: ignore[arg-type]
    assert info.value.path == "operation"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(GraderValidationError) as info:
        g.from_openai({**STRING_CHECK, "operation": "bad", "input": "{{ nope }}"})
    text = str(info.value)
    assert "operation" in text and "unknown template namespace 'nope'" in text


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    grader = g.from_openai(OPENAI_EXAMPLES[-1])
    path = grader.save(tmp_path / f"grader{suffix}")
    assert g.load(path) == grader
    if suffix == ".json":
        assert json.loads(path.read_text()) == OPENAI_EXAMPLES[-1]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GraderValidationError, match=r"bad\.json:1: not valid JSON"):
        g.load(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(GraderValidationError, match=r"bad\.yaml:2: not valid YAML"):
        g.load(tmp_path / "bad.yaml")
    (tmp_path / "invalid.yaml").write_text("type: string_check\nname: x\ninput: a\nreference: b\n")
    with pytest.raises(GraderValidationError, match=r"invalid\.yaml: operation: required"):
        g.load(tmp_path / "invalid.yaml")
    (tmp_path / "grader.txt").write_text("{}")
    with pytest.raises(UsageError, match="json, .yaml or .yml"):
        g.load(tmp_path / "grader.txt")
    with pytest.raises(UsageError, match="no such grader file"):
        g.load(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="save graders as"):
        g.from_openai(STRING_CHECK).save(tmp_path / "grader.toml")


def test_native_graders() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:my-grader:3"
    bedrock = g.Native(name="mine", target="bedrock", payload={"lambda_arn": arn})
    assert g.compile(bedrock, "bedrock") == {"lambda_arn": arn}
    with pytest.raises(GraderNotSupportedError):
        bedrock.to_openai()
    future = {"type": "future_grader", "name": "f", "knob": 1}
    openai = g.Native(name="f", target="openai", payload=future)
    assert g.compile(openai, "openai") == future and openai.to_openai() == future


def test_native_targets_are_any_provider_id_and_each_backend_checks_its_payload() -> None:
    # The core keeps no list of backends that take native graders: a plugin's id builds, and
    # each backend's compiler checks its own payload rule when the grader is compiled for it.
    plugin = g.Native(name="p", target="acme", payload={"rubric": "house rules"})
    with pytest.raises(GraderNotSupportedError, match="not grader JSON"):
        plugin.to_openai()
    bad_arn = g.Native(name="n", target="bedrock", payload={"lambda_arn": "x"})
    with pytest.raises(UsageError, match="arn:aws:lambda"):
        g.compile(bad_arn, "bedrock")
    no_type = g.Native(name="n", target="openai", payload={})
    with pytest.raises(GraderNotSupportedError, match="no 'type'"):
        g.compile(no_type, "openai")


def grade_len(sample, item):  # type: ignore[no-untyped-def]
    import math

    return math.floor(len(sample["output_text"])) / item["n"]


def decorated(fn):  # type: ignore[no-untyped-def]
    return fn


@decorated
def grade(sample, item):  # type: ignore[no-untyped-def]
    return 1.0 if sample["output_text"].strip() == str(item["answer"]) else 0.0


async def test_python_from_function_runs_in_the_sandbox(pool: SandboxPool) -> None:
    renamed = g.Python.from_function(grade_len)
    assert renamed.name == "grade_len" and "grade = grade_len" in renamed.source
    assert (await renamed.grade("abcd", {"n": 8}, pool=pool)).score == 0.5
    plain = g.Python.from_function(grade, name="exact")
    assert "@decorated" not in plain.source  # decorators run in the caller, not the sandbox
    assert (await plain.grade(" 42 ", {"answer": 42}, pool=pool)).score == 1.0
    assert g.from_openai(plain.to_openai()) == plain


def test_python_from_function_refuses_what_cannot_travel() -> None:
    outer = 3

    def closes(sample, item):  # type: ignore[no-untyped-def]
        return outer

    with pytest.raises(GraderValidationError, match="closes over outer"):
        g.Python.from_function(closes)
    with pytest.raises(GraderValidationError, match="not a lambda"):
        g.Python.from_function(lambda s, i: 1.0)
    with pytest.raises(GraderValidationError, match="takes 1 arguments"):
        g.Python.from_function(lambda_free_one_arg)


def lambda_free_one_arg(sample):  # type: ignore[no-untyped-def]
    return 1.0
