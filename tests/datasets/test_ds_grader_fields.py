"""dataset.validate(grader=...) finds every row lacking an item.* field the grader reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlft import graders as g
from rlft.datasets import Dataset, check_file
from rlft.datasets._checks import RowChecker

from .ds_helpers import jsonl, row, writer

Write = Callable[[str, str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return writer(tmp_path)


GRADER = g.Multi(
    name="triage",
    graders={
        "label": g.StringCheck(
            name="label",
            input="{{ sample.output_json.label }}",
            reference="{{ item.label }}",
            operation="eq",
        ),
        "date": g.StringCheck(
            name="date",
            input="{{ sample.output_text }}",
            reference="{{ item.ground_truth.date }}",
            operation="eq",
        ),
    },
    calculate_output="0.5 * label + 0.5 * date",
)


def good(i: int) -> dict[str, object]:
    return row(f"q{i}", label="billing", ground_truth={"date": "2025-01-02"})


def test_rows_with_every_field_pass() -> None:
    assert Dataset.from_records([good(i) for i in range(3)]).validate(grader=GRADER).ok


def test_each_missing_field_names_the_rows_that_lack_it(write: Write) -> None:
    rows = [good(i) for i in range(6)]
    del rows[1]["label"]
    del rows[3]["ground_truth"]["date"]  # type: ignore[attr-defined]
    rows[4]["ground_truth"] = "2025-01-02"  # not an object: no .date under it
    del rows[5]["label"]
    path = write("t.jsonl", jsonl(rows))
    report = check_file(path, grader=GRADER)
    missing = [(p.line, p.field) for p in report.errors]
    assert missing == [
        (2, "item.label"),
        (6, "item.label"),
        (4, "item.ground_truth.date"),
        (5, "item.ground_truth.date"),
    ]
    first = report.errors[0]
    assert first.code == "missing-item-field" and first.file == str(path)
    assert "graders.label.reference" in first.message and "item.label" in first.message
    assert first.fix == 'add "label" to every row, or change the grader\'s graders.label.reference'
    text = str(report)
    assert "at lines 2 and 6" in text and "at lines 4 and 5" in text
    # The loaded dataset reports the same rows by line.
    loaded = Dataset.from_jsonl(path).validate(grader=GRADER)
    assert [(p.line, p.field) for p in loaded.errors] == missing


def test_records_are_named_by_index() -> None:
    rows = [good(0), row("no fields")]
    (problem, other) = Dataset.from_records(rows).validate(grader=GRADER).errors
    assert (problem.row, problem.line, other.row) == (1, None, 1)
    assert "records[1]" in str(problem)


def test_the_validation_set_is_checked_too(write: Write) -> None:
    train = write("train.jsonl", jsonl([good(0)]))
    valid = write("valid.jsonl", jsonl([good(1), row("x", label="y")]))
    report = check_file(train, grader=GRADER, validation_path=valid)
    assert [(p.file, p.line, p.field) for p in report.errors] == [
        (str(valid), 2, "item.ground_truth.date")
    ]


def test_null_counts_as_present_and_list_indexes_resolve() -> None:
    grader = g.StringCheck(
        name="first",
        input="{{ sample.output_text }}",
        reference="{{ item.refs[0] }}",
        operation="eq",
    )
    ds = Dataset.from_records([row(refs=["a"]), row(refs=[]), row(refs=None), row(refs={"0": 1})])
    assert [p.row for p in ds.validate(grader=grader).errors] == [1, 2, 3]
    nullable = g.StringCheck(
        name="n", input="{{ sample.output_text }}", reference="{{ item.x }}", operation="eq"
    )
    assert Dataset.from_records([row(x=None)]).validate(grader=nullable).ok


def test_reading_a_reserved_key_explains_it_is_not_an_item_field() -> None:
    grader = g.StringCheck(
        name="m",
        input="{{ sample.output_text }}",
        reference="{{ item.messages }}",
        operation="eq",
    )
    (problem,) = Dataset.from_records([row()]).validate(grader=grader).errors
    assert "reserved" in problem.fix


@dataclass(frozen=True)
class Ref:
    path: tuple[str | int, ...]
    grader_path: str = "reference"
    template: str = "item.label"


def test_many_missing_rows_render_compactly() -> None:
    checker = RowChecker(file="big.jsonl", references=[Ref(("label",))])
    for line in range(1, 501):
        value = row(str(line)) if line in (3, 7, 9) or line > 88 else row(str(line), label="x")
        checker.check(value, line=line, row=line - 1)
    report = checker.finish()
    assert len(report.errors) == 3 + 412
    assert "at lines 3, 7, 9, 89, 90, 91, 92, 93, 94, 95 and 405 more" in str(report)
    assert str(report).count("item.label") == 1  # said once for the whole group
