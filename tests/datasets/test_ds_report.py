"""ValidationReport: counts, grouping, text and rich output, raising, pickling; the public API."""

from __future__ import annotations

import inspect
import io
import pickle
import subprocess
import sys
from types import ModuleType

import pytest
from rich.console import Console

import rlft.datasets
from rlft.datasets import Dataset, Problem, ValidationReport
from rlft.datasets._report import compact_lines
from rlft.exceptions import DatasetValidationError

from .ds_helpers import row


def problem(
    code: str = "x", severity: str = "error", line: int | None = 1, **kw: object
) -> Problem:
    fields: dict[str, object] = {"message": f"{code} here", "fix": f"fix {code}", "file": "f.jsonl"}
    fields.update(kw)
    return Problem(severity=severity, code=code, line=line, **fields)  # type: ignore[arg-type]


def test_counts_and_ok() -> None:
    report = ValidationReport(
        problems=[problem("a"), problem("b", "warning"), problem("a", line=9)], rows={"f": 10}
    )
    assert (len(report.errors), len(report.warnings), report.ok) == (2, 1, False)
    assert report.codes() == {"a", "b"} and len(report) == 3
    assert ValidationReport(problems=[problem("b", "warning")]).ok
    assert report.headline() == "2 errors, 1 warning (10 rows in f)"


def test_raise_for_errors() -> None:
    clean = ValidationReport(problems=[problem("w", "warning")])
    assert clean.raise_for_errors() is clean
    bad = ValidationReport(problems=[problem("a")])
    with pytest.raises(DatasetValidationError) as caught:
        bad.raise_for_errors()
    assert caught.value.report is bad and "error a" in str(caught.value)


def test_the_error_and_its_report_survive_pickling() -> None:
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.from_records([{"messages": 5}])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert [p.code for p in copy.report.errors] == ["messages-type"]


def test_groups_put_errors_first_and_keep_files_apart() -> None:
    report = ValidationReport(
        problems=[
            problem("w", "warning", file="a.jsonl"),
            problem("e", file="a.jsonl"),
            problem("e", file="b.jsonl"),
        ]
    )
    assert [(g.file, g.code) for g in report.groups()] == [
        ("a.jsonl", "e"),
        ("a.jsonl", "w"),
        ("b.jsonl", "e"),
    ]
    text = report.to_text()
    assert text.index("a.jsonl:") < text.index("error e") < text.index("warning w")
    assert text.index("warning w") < text.index("b.jsonl:")


def test_long_groups_are_summarised() -> None:
    problems = [problem("bad", line=n, message=f"detail {n}") for n in range(1, 31)]
    text = ValidationReport(problems=problems).to_text()
    assert "line 8: detail 8" in text and "detail 9" not in text
    assert "... and 22 more: lines 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 and 12 more" in text
    assert text.count("fix: fix bad") == 1


def test_whole_file_problems_have_no_location() -> None:
    text = ValidationReport(problems=[problem("too-few-rows", line=None)]).to_text()
    assert "\n    too-few-rows here\n" in text


def test_problem_str_names_file_line_column_field_and_fix() -> None:
    p = problem("invalid-json", line=3, column=7, field="messages")
    assert (
        str(p)
        == "f.jsonl:3:7: error invalid-json [messages]: invalid-json here (fix: fix invalid-json)"
    )
    assert p.location == "line 3, column 7"
    assert problem(line=None, row=4).location == "records[4]"


def test_rich_rendering_matches_the_text() -> None:
    report = ValidationReport(
        problems=[problem("a"), problem("b", "warning", line=2)], rows={"f": 2}
    )
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(report)
    assert buffer.getvalue().rstrip("\n") == report.to_text()
    coloured = io.StringIO()
    Console(file=coloured, width=200, force_terminal=True, color_system="standard").print(report)
    assert "\x1b[" in coloured.getvalue()


def test_json_export_is_complete() -> None:
    data = ValidationReport(problems=[problem("a", column=2)], rows={"f": 1}).to_dict()
    assert data["ok"] is False and data["rows"] == {"f": 1}
    assert data["problems"][0] == {
        "severity": "error",
        "code": "a",
        "message": "a here",
        "fix": "fix a",
        "file": "f.jsonl",
        "line": 1,
        "column": 2,
        "field": None,
        "row": None,
    }


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ([4], "line 4"),
        ([3, 7], "lines 3 and 7"),
        ([3, 7, 9], "lines 3, 7 and 9"),
        (list(range(1, 16)), "lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 5 more"),
    ],
)
def test_compact_lines(numbers: list[int], text: str) -> None:
    assert compact_lines(numbers) == text


def test_all_is_sorted_complete_and_documented() -> None:
    public = rlft.datasets.__all__
    names = {
        n
        for n, v in vars(rlft.datasets).items()
        if n[0] != "_" and not isinstance(v, ModuleType) and n != "annotations"
    }
    assert public == sorted(public, key=str.casefold)
    assert set(public) == names
    for name in public:
        value = getattr(rlft.datasets, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
    assert ValidationReport.__module__ == "rlft.datasets"
    assert Dataset.__module__ == "rlft.datasets"


def test_importing_datasets_stays_light() -> None:
    heavy = ["torch", "transformers", "trl", "datasets", "boto3", "nltk", "rouge_score", "rich"]
    code = (
        "import sys, rlft.datasets, rlft.cli._datasets\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_validate_on_a_loaded_dataset_uses_lines() -> None:
    ds = Dataset.from_records([row("a"), row("a")], source="x.jsonl")
    (warning,) = ds.validate().warnings
    assert warning.file == "x.jsonl" and warning.row == 1
