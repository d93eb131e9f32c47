"""Every kind of bad input gets a precise, located problem; none crashes the validator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rlft.datasets import Dataset, _reader, check_file
from rlft.exceptions import DatasetValidationError

from .ds_helpers import jsonl, row, writer

Write = Callable[[str, str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return writer(tmp_path)


def only(report, code):  # type: ignore[no-untyped-def]
    found = [p for p in report.problems if p.code == code]
    assert found, f"no {code!r} in:\n{report}"
    return found


def test_a_clean_file_has_no_problems(write: Write) -> None:
    path = write("ok.jsonl", jsonl([row("a", label="x"), row("b", label="y")]))
    report = check_file(path)
    assert report.ok and not report.problems, str(report)
    assert report.rows == {str(path): 2}


def test_empty_file(write: Write) -> None:
    report = check_file(write("empty.jsonl", b""))
    (problem,) = report.problems
    assert (problem.code, problem.severity, problem.message) == (
        "empty-file",
        "error",
        "the file is empty",
    )
    with pytest.raises(DatasetValidationError, match="the file is empty"):
        Dataset.from_jsonl(write("empty2.jsonl", b""))


def test_only_blank_lines_is_empty(write: Write) -> None:
    report = check_file(write("blank.jsonl", "\n  \n\r\n"))
    assert [p.code for p in report.problems] == ["empty-file"]
    assert "only blank lines" in report.problems[0].message


def test_utf8_bom_and_crlf_are_accepted(write: Write) -> None:
    text = jsonl([row("a", label="x"), row("b", label="y")]).replace("\n", "\r\n")
    path = write("bom.jsonl", b"\xef\xbb\xbf" + text.encode())
    assert check_file(path).ok and not check_file(path).problems
    ds = Dataset.from_jsonl(path)
    assert [e.item["label"] for e in ds] == ["x", "y"]
    assert [e.line for e in ds] == [1, 2]


def test_utf16_file(write: Write) -> None:
    path = write("u16.jsonl", jsonl([row()]).encode("utf-16"))
    (problem,) = check_file(path).problems
    assert problem.code == "utf16-file"
    assert "UTF-8" in problem.fix


def test_binary_garbage(write: Write) -> None:
    path = write("model.bin", bytes(range(256)) * 64)
    (problem,) = check_file(path).problems
    assert problem.code == "binary-file"
    assert problem.line is None and problem.file == str(path)


def test_non_utf8_bytes_are_located(write: Write) -> None:
    good = json.dumps(row("fine"))
    latin1 = '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1")
    path = write("latin1.jsonl", good.encode() + b"\n" + latin1 + b"\n" + good.encode() + b"\n")
    (problem,) = only(check_file(path), "encoding")
    assert (problem.line, problem.column) == (2, latin1.index(b"\xe9") + 1)
    assert "0xe9" in problem.message and "UTF-8" in problem.fix


def test_truncated_last_line(write: Write) -> None:
    text = jsonl([row("a")]) + '{"messages": [{"role": "user", "content": "cut'
    (problem,) = check_file(write("cut.jsonl", text)).problems
    assert (problem.code, problem.line) == ("truncated-line", 2)
    assert "cut off" in problem.message


def test_invalid_json_mid_file_is_not_called_truncated(write: Write) -> None:
    text = jsonl([row("a")]) + '{"messages": [], }\n' + jsonl([row("b")])
    (problem,) = check_file(write("bad.jsonl", text)).problems
    assert (problem.code, problem.line, problem.column) == ("invalid-json", 2, 18)


def test_a_complete_last_line_without_newline_is_fine(write: Write) -> None:
    path = write("nonl.jsonl", jsonl([row("a")]) + json.dumps(row("b")))
    assert check_file(path).ok
    assert len(Dataset.from_jsonl(path)) == 2


def test_nan_and_infinity_are_not_json(write: Write) -> None:
    path = write("nan.jsonl", '{"messages": [{"role": "user", "content": "x"}], "score": NaN}\n')
    (problem,) = check_file(path).problems
    assert problem.code == "invalid-json" and "NaN" in problem.message


def test_rows_that_are_not_objects(write: Write) -> None:
    path = write("shapes.jsonl", '[1, 2]\n"a string"\n42\nnull\n' + jsonl([row()]))
    problems = only(check_file(path), "not-an-object")
    assert [(p.line, p.message) for p in problems] == [
        (1, "the row is an array"),
        (2, "the row is a string"),
        (3, "the row is a number (42)"),
        (4, "the row is null"),
    ]


def test_messages_not_a_list(write: Write) -> None:
    path = write("m.jsonl", jsonl([{"messages": "hello"}, {"messages": {"role": "user"}}]))
    problems = only(check_file(path), "messages-type")
    assert [(p.line, p.field) for p in problems] == [(1, "messages"), (2, "messages")]
    assert "a string, not a list" in problems[0].message
    assert "an object, not a list" in problems[1].message


def test_numbers_where_strings_belong(write: Write) -> None:
    rows = [
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": 1, "content": "x"}]},
        {"messages": [{"role": "user", "content": "x", "name": 7}]},
    ]
    report = check_file(write("n.jsonl", jsonl(rows)))
    (content,) = only(report, "content-type")
    assert (content.line, content.field) == (1, "messages[0].content")
    assert "a number (42)" in content.message and "quote numbers" in content.fix
    (role,) = only(report, "role-type")
    assert (role.line, role.field) == (2, "messages[0].role")
    (name,) = only(report, "field-type")
    assert (name.line, name.field) == (3, "messages[0].name")


def test_every_row_level_problem_is_reported_not_just_the_first(write: Write) -> None:
    rows = [
        {"label": "no messages"},
        {"messages": []},
        {"messages": ["hi"]},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "human", "content": "hi"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": "  "}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": "search"},
    ]
    report = check_file(write("many.jsonl", jsonl(rows)))
    codes = [(p.line, p.code) for p in report.errors]
    assert codes == [
        (1, "missing-messages"),
        (2, "empty-messages"),
        (3, "message-type"),
        (4, "missing-role"),
        (5, "unknown-role"),
        (6, "missing-content"),
        (7, "empty-content"),
        (8, "last-not-user"),
        (9, "content-part"),
        (10, "tools-type"),
    ]
    with pytest.raises(DatasetValidationError) as caught:
        Dataset.from_jsonl(report.problems[0].file)  # type: ignore[arg-type]
    assert [(p.line, p.code) for p in caught.value.report.errors] == codes
    assert "10 errors" in str(caught.value)


def test_an_assistant_turn_with_only_tool_calls_needs_no_content(write: Write) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "user", "content": "and now?"},
    ]
    assert check_file(write("tools.jsonl", jsonl([{"messages": messages}]))).ok


def test_unknown_message_keys_warn(write: Write) -> None:
    typo = {"role": "user", "contnet": "x", "content": "y"}
    path = write("k.jsonl", jsonl([{"messages": [typo]}]))
    report = check_file(path)
    assert report.ok
    (warning,) = report.warnings
    assert (warning.code, warning.field) == ("unknown-message-key", "messages[0].contnet")


def test_blank_lines_warn_and_are_skipped(write: Write) -> None:
    path = write("b.jsonl", jsonl([row("a")]) + "\n" + jsonl([row("b")]))
    report = check_file(path)
    assert report.ok
    assert [(p.code, p.line) for p in report.warnings] == [("blank-line", 2)]
    assert [e.line for e in Dataset.from_jsonl(path)] == [1, 3]


def test_duplicates_warn_and_name_the_first(write: Write) -> None:
    a = row("same", label="x")
    reordered = {"label": "x", "messages": [{"content": "same", "role": "user"}]}
    path = write("d.jsonl", jsonl([a, row("other"), reordered, a]))
    report = check_file(path)
    assert report.ok
    dupes = only(report, "duplicate-row")
    assert [(p.line, p.message) for p in dupes] == [
        (3, "the row repeats line 1"),
        (4, "the row repeats line 1"),
    ]


def test_a_ten_megabyte_line_is_read(write: Write) -> None:
    big = row("x" * (10 * 1024 * 1024), label="big")
    path = write("big.jsonl", jsonl([big, row("small")]))
    assert check_file(path).ok
    ds = Dataset.from_jsonl(path)
    assert len(ds[0].messages[0]["content"]) == 10 * 1024 * 1024


def test_a_line_over_the_guard_is_refused_without_reading_it_whole(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_reader, "MAX_LINE_BYTES", 1024)
    path = write("huge.jsonl", jsonl([row("x" * 5000), row("ok")]))
    report = check_file(path)
    (problem,) = report.errors
    assert (problem.code, problem.line) == ("line-too-long", 1)
    assert report.rows == {str(path): 1}  # the next line was still read


def test_a_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (problem,) = check_file(tmp_path / "nope.jsonl").problems
    assert problem.code == "unreadable-file"
    with pytest.raises(DatasetValidationError, match="cannot open"):
        Dataset.from_jsonl(tmp_path / "nope.jsonl")


def test_a_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (problem,) = check_file(tmp_path).problems
    assert problem.code == "unreadable-file"


def test_deep_nesting_does_not_crash(write: Write) -> None:
    path = write("deep.jsonl", '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    report = check_file(path)
    assert not report.ok
    assert report.problems[0].code in {"invalid-json", "messages-type", "message-type"}
