"""``rlft validate``: grouped report, a fix per kind, exit 1 on errors and 0 on warnings only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlft.cli._datasets import validate

from .ds_helpers import jsonl, row, writer

Write = Callable[[str, str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return writer(tmp_path)


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(validate, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_clean_file_exits_zero(write: Write) -> None:
    code, output = run(write("ok.jsonl", jsonl([row("a", label="x"), row("b", label="y")])))
    assert code == 0
    assert output.startswith("no problems (2 rows in ")


def test_warnings_only_exit_zero(write: Write) -> None:
    code, output = run(write("dup.jsonl", jsonl([row("a"), row("a")])))
    assert code == 0
    assert "warning duplicate-row" in output and "line 2: the row repeats line 1" in output


def test_errors_exit_one_grouped_with_lines_and_a_fix_per_kind(write: Write) -> None:
    text = (
        jsonl([row("ok")])
        + "[1]\n"
        + '{"messages": [{"role": "user", "content": 5}]}\n'
        + "not json\n"
        + '{"messages": [{"role": "user", "content": 6}]}\n'
    )
    code, output = run(write("bad.jsonl", text))
    assert code == 1
    assert output.splitlines()[0].startswith("4 errors, 0 warnings (4 rows in ")
    blocks = re.split(r"\n(?=  \S)", output)  # one block per kind, at two-space indent
    content = next(b for b in blocks if b.startswith("  error content-type"))
    assert content.splitlines()[0] == "  error content-type (2 rows)"
    assert "line 3: messages[0].content is a number (5)" in content
    assert "line 5: messages[0].content is a number (6)" in content
    assert content.count("fix:") == 1
    assert "line 2: the row is an array" in output
    assert "line 4, column 1: Expecting value" in output


def test_provider_validation_and_grader_options(write: Write, tmp_path: Path) -> None:
    grader = tmp_path / "grader.json"
    grader.write_text(
        json.dumps(
            {
                "type": "string_check",
                "name": "label",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.label }}",
                "operation": "eq",
            }
        )
    )
    train = write("train.jsonl", jsonl([row("a", label="x"), row("b")]))
    code, output = run(train, "--provider", "azure", "--grader", grader)
    assert code == 1
    assert "error validation-required" in output  # Azure needs a validation file
    assert "error missing-item-field" in output and "line 2" in output
    valid = write("valid.jsonl", jsonl([{"messages": [{"role": "system", "content": "s"}]}]))
    code, output = run(train, "-p", "azure", "--validation", valid, "--grader", grader)
    assert "validation-required" not in output
    assert f"{valid}:" in output and "role-not-supported" in output


def test_json_output(write: Write) -> None:
    code, output = run(write("bad.jsonl", "[1]\n" + jsonl([row()])), "--format", "json")
    data = json.loads(output)
    assert code == 1 and data["ok"] is False and data["errors"] == 1
    (problem,) = data["problems"]
    assert problem["code"] == "not-an-object" and problem["line"] == 1


def test_missing_file_is_reported_not_a_traceback(tmp_path: Path) -> None:
    code, output = run(tmp_path / "nope.jsonl")
    assert code == 1 and "unreadable-file" in output


def test_a_bad_grader_file_is_a_usage_error(write: Write, tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text('{"type": "nope"}')
    result = CliRunner().invoke(
        validate, [str(write("t.jsonl", jsonl([row()]))), "--grader", str(bad)]
    )
    assert result.exit_code != 0
    assert "unknown grader type" in str(result.exception)


def test_registered_in_the_rlft_command() -> None:
    from rlft.cli import main

    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "--validation" in result.output
