"""The template language: parsing at build time, rendering that fails closed, item references."""

from __future__ import annotations

import pytest

from rlft import graders as g
from rlft.graders._runtime.template import (
    TemplateRenderError,
    TemplateSyntaxError,
    parse_template,
)

SAMPLE = {
    "output_text": '{"a": {"b": [10, 20]}, "label": "billing"}',
    "output_json": {"a": {"b": [10, 20]}, "label": "billing", "odd key": "x"},
    "output_tools": [{"type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
    "choices": [],
}
ITEM = {"answer": "42", "ground_truth": {"date": "2024-01-02"}, "n": 3, "tags": ["x", "y"]}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ sample.output_text }}", SAMPLE["output_text"]),
        ("{{sample.output_text}}", SAMPLE["output_text"]),  # spaces are optional
        ("{{ sample.output_json.label }}", "billing"),
        ("{{ sample.output_json.a.b[1] }}", "20"),
        ('{{ sample.output_json["odd key"] }}', "x"),
        ("{{ sample.output_tools[0].function.name }}", "lookup"),
        ("{{ item.ground_truth.date }}", "2024-01-02"),
        ("{{ item.n }}", "3"),  # non-strings render as JSON
        ("{{ item.tags }}", '["x", "y"]'),
        ("{{ item.tags[-1] }}", "y"),
        (
            "answer={{ item.answer }}; label={{sample.output_json.label}}.",
            "answer=42; label=billing.",
        ),
        ('{"x": {{ item.n }}}', '{"x": 3}'),  # the first "}}" closes; the last "}" is literal
        ("no variables at all", "no variables at all"),
        ("", ""),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert parse_template(template).render(SAMPLE, ITEM) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ foo.bar }}", "unknown template namespace 'foo'"),
        ("{{ Item.answer }}", "unknown template namespace 'Item'"),
        ("{{ item.answer ", "never closed"),
        ("{{ }}", "empty"),
        ("{{ item..answer }}", "malformed"),
        ("{{ item.answer + 1 }}", "malformed"),
        ("{{ item[unquoted] }}", "malformed"),
        ("{{ sample.output }}", "unknown sample field 'output'"),
        ("{{ sample }}", "names no sample field"),
        ("{{ 1 }}", "malformed"),
    ],
)
def test_syntax_errors_at_parse_time(template: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=message):
        parse_template(template)


@pytest.mark.parametrize(
    ("template", "sample", "kind", "message"),
    [
        ("{{ item.missing }}", SAMPLE, "invalid_variable", "item has no field 'missing'"),
        ("{{ item.ground_truth.year }}", SAMPLE, "invalid_variable", "has no field 'year'"),
        ("{{ item.tags[5] }}", SAMPLE, "invalid_variable", "has 2 elements, no index 5"),
        ("{{ item.answer.x }}", SAMPLE, "invalid_variable", "is str, not an object"),
        ("{{ item.n[0] }}", SAMPLE, "invalid_variable", "is int, not a list"),
        ("{{ sample.output_json.nope }}", SAMPLE, "invalid_variable", "no field 'nope'"),
        (
            "{{ sample.output_json.label }}",
            {**SAMPLE, "output_json": None},
            "sample_parse",
            "not valid JSON",
        ),
    ],
)
def test_render_fails_closed_with_a_kind(
    template: str, sample: dict[str, object], kind: str, message: str
) -> None:
    with pytest.raises(TemplateRenderError, match=message) as info:
        parse_template(template).render(sample, ITEM)
    assert info.value.kind == kind


def test_item_references_lists_every_item_path_with_its_grader_path() -> None:
    grader = g.Multi(
        name="m",
        graders={
            "label": g.StringCheck(
                name="label",
                input="{{ sample.output_json.label }}",
                reference="{{ item.ground_truth.date }}",
                operation="eq",
            ),
            "judge": g.ScoreModel(
                name="judge",
                model="gpt-4.1",
                input=[
                    g.Message(role="developer", content="Grade against {{item.rubric}}."),
                    g.Message(
                        role="user",
                        content=[
                            {"type": "input_text", "text": "Q: {{ item.q[0] }}"},
                            {"type": "input_text", "text": "A: {{ sample.output_text }}"},
                        ],
                    ),
                ],
            ),
        },
        calculate_output="label * judge",
    )
    refs = g.item_references(grader)
    assert [(r.path, r.grader_path, r.template) for r in refs] == [
        (("ground_truth", "date"), "graders.label.reference", "item.ground_truth.date"),
        (("rubric",), "graders.judge.input[0].content", "item.rubric"),
        (("q", 0), "graders.judge.input[1].content[0].text", "item.q[0]"),
    ]


def test_item_references_of_a_python_grader_is_empty() -> None:
    # Code reads item at run time; a static pass cannot see it, and says nothing.
    grader = g.Python(name="p", source="def grade(sample, item):\n    return item['x']\n")
    assert g.item_references(grader) == []
