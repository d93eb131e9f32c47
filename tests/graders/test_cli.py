"""rlft grade, rlft grader compile and rlft grader probe, through click's CliRunner."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rlft import graders as g
from rlft.cli._graders import grade, grader

TRIAGE = g.Multi(
    name="triage",
    graders={
        "label": g.StringCheck(
            name="label",
            input="{{ sample.output_json.label }}",
            reference="{{ item.label }}",
            operation="ilike",
        ),
        "why": g.TextSimilarity(
            name="why",
            input="{{ sample.output_json.why }}",
            reference="{{ item.why }}",
            evaluation_metric="rouge_1",
        ),
    },
    calculate_output="0.8 * label + 0.2 * why",
)
STRICT = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
ROWS = [
    {
        "messages": [{"role": "user", "content": "Ticket: charged twice"}],
        "label": "billing",
        "why": "double charge",
    },
    {
        "messages": [{"role": "user", "content": "Ticket: app crashes"}],
        "label": "technical",
        "why": "app crash",
    },
    {
        "messages": [{"role": "user", "content": "Ticket: new email"}],
        "label": "account",
        "why": "email change",
    },
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "grader": TRIAGE.save(tmp_path / "triage.yaml"),
        "strict": STRICT.save(tmp_path / "strict.json"),
        "items": write_jsonl(tmp_path / "data.jsonl", ROWS),
        "samples": write_jsonl(
            tmp_path / "samples.jsonl",
            [
                json.dumps({"label": "billing", "why": "double charge"}),
                {"output_text": json.dumps({"label": "billing", "why": "x"})},
                "not json",
            ],
        ),
    }


def run(command: Any, *args: str | Path) -> Result:
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


def test_grade_prints_a_table_and_a_summary(files: dict[str, Path]) -> None:
    result = run(grade, files["grader"], "--samples", files["samples"], "--items", files["items"])
    assert result.exit_code == 0, result.output
    assert "grader 'triage'" in result.output
    assert "label=1, why=1" in result.output
    assert "3 samples, mean 0.3333" in result.output  # (1.0 + 0.0 + 0.0) / 3
    assert "1 failed to grade (sample_parse: 1)" in result.output
    assert "not valid JSON" in result.output


def test_grade_json_and_strict(files: dict[str, Path]) -> None:
    result = run(
        grade,
        files["grader"],
        "--samples",
        files["samples"],
        "--items",
        files["items"],
        "--json",
        "--strict",
    )
    assert result.exit_code == 1  # --strict: a sample failed to grade
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [row["score"] for row in lines[:3]] == [1.0, 0.0, 0.0]
    assert lines[1]["sub_scores"] == {"label": 0.0, "why": 0.0}  # "billing" is not "technical"
    summary = lines[3]["summary"]
    assert summary["failures"] == {"sample_parse": 1} and summary["distribution"]["0"] == 2


def test_grade_with_inline_items(tmp_path: Path, files: dict[str, Path]) -> None:
    samples = write_jsonl(
        tmp_path / "inline.jsonl",
        [
            {"sample": '{"label": "Billing dept"}', "item": {"label": "billing"}},
            {"sample": {"role": "assistant", "content": '{"label": "x"}'}, "item": {"label": "y"}},
        ],
    )
    result = run(grade, files["strict"], "--samples", samples, "--json")
    assert [json.loads(line).get("score") for line in result.output.splitlines()[:2]] == [0.0, 0.0]
    loose = g.StringCheck(
        name="l",
        input="{{ sample.output_json.label }}",
        reference="{{ item.label }}",
        operation="ilike",
    ).save(tmp_path / "l.json")
    result = run(grade, loose, "--samples", samples, "--json")
    assert json.loads(result.output.splitlines()[0])["score"] == 1.0


def test_grade_remote_scores_beside_local(files: dict[str, Path]) -> None:
    # The built-in fake provider runs graders on the local engine through client.graders.run.
    result = run(
        grade,
        files["grader"],
        "--samples",
        files["samples"],
        "--items",
        files["items"],
        "--remote",
        "fake",
        "--json",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [row["remote_score"] for row in lines[:3]] == [row["score"] for row in lines[:3]]
    assert lines[3]["summary"]["remote_max_abs_diff"] == 0.0


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            '{"type": "string_check", "name": "x", "input": "{{ itm.a }}", "reference": "b", '
            '"operation": "eq"}',
            "bad.json",
            "bad.json:1: input: unknown template namespace 'itm'",
        ),
        ("{not json", "broken.json", "broken.json:1: not valid JSON"),
        (
            '{"type": "multi", "name": "m", "graders": {"a": {"type": "python", "name": "a", '
            '"source": "print(1)"}}, "calculate_output": "a"}',
            "nograde.json",
            "graders.a.source: python source defines no top-level",
        ),
    ],
)
def test_invalid_graders_exit_2_naming_file_and_field(
    tmp_path: Path, files: dict[str, Path], content: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = run(grade, path, "--samples", files["samples"])
    assert result.exit_code == 2 and message in result.output


def test_bad_input_files_exit_2_with_the_line(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n{oops\n')
    result = run(grade, files["grader"], "--samples", bad)
    assert result.exit_code == 2 and "bad.jsonl:2: not valid JSON" in result.output
    result = run(
        grade,
        files["grader"],
        "--samples",
        files["samples"],
        "--items",
        write_jsonl(tmp_path / "two.jsonl", ROWS[:2]),
    )
    assert result.exit_code == 2 and "has 3 samples but" in result.output


def test_compile_prints_payloads(tmp_path: Path, files: dict[str, Path]) -> None:
    result = run(grader, "compile", files["grader"], "--provider", "openai")
    assert result.exit_code == 0 and json.loads(result.output) == TRIAGE.to_openai()
    zip_path = tmp_path / "grader.zip"
    result = run(grader, "compile", files["grader"], "-p", "bedrock", "-o", zip_path)
    info = json.loads(result.output)
    assert info["handler"] == "rlft_grader_handler.lambda_handler"
    assert info["requirements"] == []  # bundled into the zip instead
    assert [spec.split("==")[0] for spec in info["bundled"]] == ["nltk", "rouge-score"]
    assert "rlft_grader_handler.py" in zipfile.ZipFile(io.BytesIO(zip_path.read_bytes())).namelist()
    result = run(grader, "compile", files["grader"], "-p", "fake")  # a provider: its target
    assert json.loads(result.output) == TRIAGE.to_dict()
    cosine = g.TextSimilarity(
        name="c", input="{{ sample.output_text }}", reference="x", evaluation_metric="cosine"
    ).save(tmp_path / "c.json")
    result = run(grader, "compile", cosine, "-p", "azure")
    assert result.exit_code == 2 and "(target 'azure')" in result.output


def test_probe_flags_a_gameable_grader_and_passes_a_strict_one(files: dict[str, Path]) -> None:
    result = run(grader, "probe", files["grader"], "--items", files["items"], "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert "all_labels" in report["gameable"]  # ilike passes "billing, technical, account"
    result = run(grader, "probe", files["strict"], "--items", files["items"])
    assert result.exit_code == 0, result.output
    assert "no adversarial output scored above the threshold" in result.output
