"""Every bad input named in issue 15 gets one clear line (file, line, field, fix) and a non-zero
exit through the real ``rlft`` command, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import assert_one_clear_line, cli

from rlft._jobfile import load_job_file
from rlft.exceptions import ConfigurationError

Write = Callable[[str, Any], Path]

ROW = {"messages": [{"role": "user", "content": "hi"}], "label": "a"}
GRADER = {
    "type": "string_check",
    "name": "g",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.label }}",
    "operation": "eq",
}
GOOD_JOB = 'train = "train.jsonl"\ngrader = "grader.json"\n'


@pytest.fixture
def folder(tmp_path: Path, write: Write) -> Path:
    write("train.jsonl", json.dumps(ROW) + "\n")
    write("grader.json", json.dumps(GRADER))
    write("samples.jsonl", '"a"\n')
    write("rlft.toml", f'provider = "fake"\n[fake]\nstate_dir = "{tmp_path / "state"}"\n')
    return tmp_path


LONE = '{"messages": [{"role": "user", "content": "cut \\ud83d here"}], "label": "a"}\n'
BAD_JSONL: dict[str, tuple[bytes, list[str]]] = {
    # name: (content, what the error line must say besides the file name)
    "binary": (b"\x00\x01\x02\xff\xfe", ["binary", "UTF-8"]),
    "latin1": ('"caf\u00e9"\n'.encode("latin-1"), [":1:", "0xe9", "UTF-8"]),
    "utf16": ('"a"\n'.encode("utf-16"), ["UTF-16", "UTF-8"]),
    "deep-parser": (b"[" * 100_000 + b"]" * 100_000 + b"\n", [":1:", "nested too deeply"]),
    "deep": (("[" * 70 + "]" * 70 + "\n").encode(), [":1:", "64", "flatten"]),
    "deep-item": (
        ('{"a": ' + "[" * 70 + "]" * 70 + "}\n").encode(),
        [":1:", "at a" + "[0]" * 63, "flatten"],
    ),
    "surrogate": (LONE.encode(), [":1:", "messages[0].content", "\\uD8xx"]),
}


@pytest.mark.parametrize("name", sorted(BAD_JSONL))
@pytest.mark.parametrize("role", ["samples", "items"])
def test_rlft_grade_refuses_bad_samples_and_items_in_one_line(
    folder: Path, write: Write, name: str, role: str
) -> None:
    content, expected = BAD_JSONL[name]
    bad = write(f"{name}.jsonl", content)
    samples = bad if role == "samples" else folder / "samples.jsonl"
    items = ["--items", bad] if role == "items" else []
    result = cli("grade", folder / "grader.json", "--samples", samples, *items)
    assert_one_clear_line(result, names=[str(bad), *expected])


def test_a_lone_surrogate_is_a_located_problem_in_rlft_validate_and_rlft_run(
    folder: Path, write: Write
) -> None:
    write("train.jsonl", LONE)
    result = cli("validate", folder / "train.jsonl")
    assert result.exit_code == 1
    assert "lone-surrogate" in result.output and "line 1" in result.output
    write("job.toml", GOOD_JOB)
    result = cli("run", folder / "job.toml", "--no-preflight", "--detach", cwd=folder)
    assert result.exit_code == 2
    assert "lone-surrogate" in result.output and "train.jsonl" in result.output


JOB_FILES: dict[str, tuple[str | bytes, list[str]]] = {
    "labels-string": (GOOD_JOB + 'labels = "x"\n', [":3:", "labels is a string", "[labels]"]),
    "labels-list": (GOOD_JOB + 'labels = ["x"]\n', [":3:", "labels is an array", "[labels]"]),
    "label-value-table": (GOOD_JOB + "[labels]\nteam = {a = 1}\n", ["labels.team is a table"]),
    "name-number": ("name = 5\n" + GOOD_JOB, [":1:", "name is an integer", 'name = "']),
    "model-table": (GOOD_JOB + "[model]\na = 1\n", [":3:", "model is a table", 'model = "']),
    "response-format-string": (
        'response_format = "json"\n' + GOOD_JOB,
        [":1:", "response_format is a string", "[response_format]"],
    ),
    "validation-zero": (
        "validation = 0\n" + GOOD_JOB,
        [":1:", "validation is an integer", "delete the line for no validation set"],
    ),
    "validation-false": ("validation = false\n" + GOOD_JOB, [":1:", "validation is a boolean"]),
    "validation-empty": ('validation = ""\n' + GOOD_JOB, [":1:", "empty path", "delete the line"]),
    "train-number": ('train = 5\ngrader = "grader.json"\n', [":1:", "train is an integer"]),
    "grader-number": ('train = "train.jsonl"\ngrader = 5\n', [":2:", "grader is an integer"]),
    "hyperparameters-string": (
        GOOD_JOB + 'hyperparameters = "fast"\n',
        [":3:", "hyperparameters is a string"],
    ),
    "hyperparameters-bad-value": (
        GOOD_JOB + "[hyperparameters]\nepochs = 0\n",
        [":3:", "hyperparameters.epochs"],
    ),
    "unknown-key": (GOOD_JOB + "epochs = 2\n", [":3:", "unknown key(s) epochs", "a job file has"]),
    "missing-train": ('grader = "grader.json"\n', ["missing 'train'"]),
    "binary": (b"\x00\xff\xfe\x01", ["binary", "UTF-8"]),
    "utf16": (GOOD_JOB.encode("utf-16"), ["UTF-16", "UTF-8"]),
    "latin1": (
        'name = "caf\u00e9"\n'.encode("latin-1") + GOOD_JOB.encode(),
        [":1:12:", "0xe9", "UTF-8"],
    ),
    "deep-5000": (
        GOOD_JOB + "a = " + "[" * 5000 + "]" * 5000 + "\n",
        ["nests too deeply", "64"],
    ),
    "deep-70": (
        GOOD_JOB + "[labels]\nx = " + "[" * 70 + "]" * 70 + "\n",
        [":3:", "nests more than 64", "flatten"],
    ),
    "not-toml": (GOOD_JOB + "labels = {\n", ["not valid TOML", "line 3"]),
    "missing-dataset": ('train = "nope.jsonl"\ngrader = "grader.json"\n', ["nope.jsonl"]),
    "nul-in-path": ('train = "a\\u0000b"\ngrader = "grader.json"\n', [":1:", "NUL", "path"]),
}


@pytest.mark.parametrize("name", sorted(JOB_FILES))
def test_bad_job_files_are_one_located_line(folder: Path, write: Write, name: str) -> None:
    content, expected = JOB_FILES[name]
    job = write(f"{name}.toml", content)
    result = cli("run", job, "--no-preflight", "--detach", cwd=folder)
    assert result.exit_code == 2, result.output
    if name == "missing-dataset":  # the dataset report: every problem listed
        assert all(text in result.output for text in expected), result.output
        return
    assert_one_clear_line(result, names=[str(job), *expected])


def test_validation_zero_is_never_read_as_no_validation_set(folder: Path, write: Write) -> None:
    job = write("job.toml", "validation = 0\n" + GOOD_JOB)
    with pytest.raises(ConfigurationError, match="validation is an integer"):
        load_job_file(job)
    spec = load_job_file(write("ok.toml", GOOD_JOB))  # omitted: no validation set, on purpose
    assert spec.validation is None


CONFIG_FILES: dict[str, tuple[str | bytes, list[str]]] = {
    "binary": (b"provider = \x00", ["binary"]),
    "latin1": ('provider = "caf\u00e9"\n'.encode("latin-1"), [":1:", "0xe9"]),
    "deep": ("x = " + "[" * 5000 + "]" * 5000 + "\n", ["nests too deeply"]),
    "provider-number": ("provider = 5\n", ["provider is an integer", 'provider = "local"']),
    "profiles-string": ('profiles = "prod"\n', ["profiles is a string", "[profiles.<name>]"]),
    "unknown-key": ("epochs = 2\n", ["unknown top-level key(s) epochs"]),
}


@pytest.mark.parametrize("name", sorted(CONFIG_FILES))
def test_bad_config_files_are_one_line(
    monkeypatch: pytest.MonkeyPatch, write: Write, name: str
) -> None:
    content, expected = CONFIG_FILES[name]
    config = write("rlft.toml", content)
    monkeypatch.setenv("RLFT_CONFIG", str(config))
    assert_one_clear_line(cli("providers"), names=[str(config), *expected])


def test_a_profile_that_is_not_a_table_is_one_line(
    monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    config = write("rlft.toml", "[profiles]\nprod = 3\n")
    monkeypatch.setenv("RLFT_CONFIG", str(config))
    monkeypatch.setenv("RLFT_PROFILE", "prod")
    assert_one_clear_line(cli("providers"), names=["profiles.prod is an integer"])


def test_an_unexpected_error_is_one_line_naming_it_a_bug(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    import rlft.cli._graders as graders_cli

    def broken(path: Path) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(graders_cli, "_load_grader", broken)
    result = cli("grade", folder / "grader.json", "--samples", folder / "samples.jsonl")
    line = assert_one_clear_line(result, code=1, names=["unexpected KeyError", "RLFT_TRACEBACK=1"])
    assert "bug in rlft" in line
    monkeypatch.setenv("RLFT_TRACEBACK", "1")
    from click.testing import CliRunner

    from rlft.cli import main

    raw = CliRunner().invoke(main, ["grade", str(folder / "grader.json"), "--samples",
                                    str(folder / "samples.jsonl")])  # fmt: skip
    assert isinstance(raw.exception, KeyError)  # the switch gives the real error back
