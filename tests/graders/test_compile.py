"""compile(): the support matrix cell by cell, and payloads pinned to OpenAI's own types."""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from openai.types.graders import (
    LabelModelGraderParam,
    PythonGraderParam,
    ScoreModelGraderParam,
    StringCheckGraderParam,
    TextSimilarityGraderParam,
)
from pydantic import TypeAdapter

from rlft import graders as g
from rlft.exceptions import GraderNotSupportedError, UsageError
from rlft.graders._compile import support_columns, support_matrix, support_row

SUPPORT = support_matrix()  # derived from the formats and what the built-in backends declare
TARGETS = support_columns()
SUPPORT_ROWS = {row: row for row in SUPPORT}

DOCS = Path(__file__).resolve().parents[2] / "docs" / "graders.md"

CHECK = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
SIMILAR = g.TextSimilarity(
    name="why",
    input="{{ sample.output_text }}",
    reference="{{ item.why }}",
    evaluation_metric="rouge_l",
)
COSINE = g.TextSimilarity(
    name="cos",
    input="{{ sample.output_text }}",
    reference="{{ item.why }}",
    evaluation_metric="cosine",
)
PYTHON = g.Python(
    name="code", source="def grade(sample, item):\n    return 1.0\n", image_tag="2025-05-08"
)
JUDGE = g.ScoreModel(
    name="judge",
    model="gpt-4.1",
    input=[g.Message(role="user", content="{{ sample.output_text }}")],
    range=(0, 1),
    sampling_params={"temperature": 0.0},
)
LABEL = g.LabelModel(
    name="tone",
    model="gpt-4o",
    input=[g.Message(role="user", content="{{ sample.output_text }}")],
    labels=["good", "bad"],
    passing_labels=["good"],
)
ARN = "arn:aws:lambda:us-west-2:123456789012:function:grader"

# One grader per matrix row; the test below walks every cell.
EXAMPLES: dict[str, g.BaseGrader] = {
    "string_check": CHECK,
    "text_similarity": SIMILAR,
    "text_similarity:cosine": COSINE,
    "python": PYTHON,
    "score_model": JUDGE,
    "label_model": LABEL,
    "multi": g.Multi(
        name="m",
        graders={"label": CHECK, "why": SIMILAR, "code": PYTHON, "judge": JUDGE},
        calculate_output="label * why",
    ),
    "multi:label_model": g.Multi(name="m", graders={"tone": LABEL}, calculate_output="tone"),
    "native:openai": g.Native(name="n", target="openai", payload=CHECK.to_dict()),
    "native:azure": g.Native(name="n", target="azure", payload=CHECK.to_dict()),
    "native:bedrock": g.Native(name="n", target="bedrock", payload={"lambda_arn": ARN}),
    "native:bedrock-open-weight": g.Native(
        name="n", target="bedrock-open-weight", payload={"lambda_arn": ARN}
    ),
}


def test_every_matrix_row_has_an_example() -> None:
    assert set(EXAMPLES) == set(SUPPORT) == set(SUPPORT_ROWS)
    for row, grader in EXAMPLES.items():
        rows = {support_row(grader)}
        if isinstance(grader, g.Multi):
            rows |= {support_row(sub, inside_multi=True) for sub in grader.graders.values()}
        assert row in rows


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("row", list(SUPPORT), ids=str)
def test_support_matrix(row: str, target: str) -> None:
    cell = SUPPORT[row][target]
    with nullcontext() if cell.supported else pytest.raises(GraderNotSupportedError) as info:
        payload = g.compile(EXAMPLES[row], target)
        assert payload is not None
    if not cell.supported:
        error = info.value
        assert error.target == target and error.hint and cell.reason and cell.reason in str(error)


def test_refusals_name_the_sub_grader_path() -> None:
    grader = g.Multi(name="m", graders={"label": CHECK, "sim": COSINE}, calculate_output="label")
    with pytest.raises(GraderNotSupportedError) as info:
        g.compile(grader, "openai")
    assert (info.value.path, info.value.target) == ("graders.sim", "openai")
    assert "rouge_l" in info.value.hint
    with pytest.raises(GraderNotSupportedError) as top:
        g.compile(LABEL, "azure")
    assert top.value.path == "tone" and "wrap it" in top.value.hint


def test_docs_table_is_generated_from_the_matrix() -> None:
    text = DOCS.read_text()
    table = g.support_table_markdown()
    assert table in text, "regenerate the table in docs/graders.md from support_table_markdown()"
    for row in SUPPORT_ROWS:
        label = f"Native(target='{row[7:]}')" if row.startswith("native:") else None
        assert label is None or f"| {label} |" in table


STRING_CHECK_T = TypeAdapter(StringCheckGraderParam)
SUB_TYPES: dict[str, TypeAdapter[Any]] = {
    "string_check": STRING_CHECK_T,
    "text_similarity": TypeAdapter(TextSimilarityGraderParam),
    "python": TypeAdapter(PythonGraderParam),
    "score_model": TypeAdapter(ScoreModelGraderParam),
    "label_model": TypeAdapter(LabelModelGraderParam),
}


def assert_openai_shaped(payload: dict[str, Any]) -> None:
    """Pin the JSON to openai-python's own parameter types, with unknown keys refused."""
    if payload["type"] == "multi":
        # Spec bug: the types say one grader, the wire wants a dict keyed by formula names
        # (https://github.com/openai/openai-java/issues/647). Check each sub-grader instead.
        assert isinstance(payload["graders"], dict)
        assert set(payload) == {"type", "name", "graders", "calculate_output"}
        for sub in payload["graders"].values():
            SUB_TYPES[sub["type"]].validate_python(sub, extra="forbid")
        return
    SUB_TYPES[payload["type"]].validate_python(payload, extra="forbid")


@pytest.mark.parametrize("target", ["openai", "azure"])
@pytest.mark.parametrize(
    "row",
    ["string_check", "text_similarity", "python", "score_model", "multi", "multi:label_model"],
)
def test_openai_payloads_match_the_official_types(row: str, target: str) -> None:
    payload = g.compile(EXAMPLES[row], target)
    assert_openai_shaped(payload)
    assert "null" not in repr(payload) and None not in payload.values()


def test_multi_graders_are_a_dict_keyed_by_formula_names() -> None:
    payload = g.compile(EXAMPLES["multi"], "openai")
    assert list(payload["graders"]) == ["label", "why", "code", "judge"]
    names = set(re.findall(r"[a-z_]+", payload["calculate_output"]))
    assert names <= set(payload["graders"])


def test_local_returns_the_grader_and_targets_are_checked() -> None:
    assert g.compile(CHECK, "local") is CHECK
    assert g.compile(CHECK.to_dict(), "local") == CHECK
    with pytest.raises(UsageError, match="unknown grader target 'vertex'"):
        g.compile(CHECK, "vertex")
    with pytest.raises(UsageError, match="takes no options"):
        g.compile(CHECK, "openai", judge="x")
    with pytest.raises(UsageError, match="compile\\(grader, 'trl'\\)"):
        g.compile(CHECK, "trl", nonsense=1)


def test_cosine_compiles_for_trl_with_an_embedder() -> None:
    class Embedder:
        async def embed(self, texts: Any) -> list[list[float]]:
            return [[1.0] for _ in texts]

    function = g.compile(COSINE, "trl", embedder=Embedder())
    assert function(completions=["a"], why=["a"]) == [1.0]
