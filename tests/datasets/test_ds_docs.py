"""docs/datasets.md stays true: its CLI example runs as shown, and every problem code is listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import rlft.datasets
from rlft.cli._datasets import validate

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")


def block_after(marker: str, fence: str) -> str:
    start = DOC.index(marker)
    body = DOC.index(f"```{fence}\n", start) + len(f"```{fence}\n")
    return DOC[body : DOC.index("```", body)]


def test_the_cli_example_prints_what_the_doc_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tickets.jsonl").write_text(block_after("`tickets.jsonl`:", "jsonl"))
    (tmp_path / "grader.json").write_text(block_after("`grader.json`:", "json"))
    shown = block_after("`grader.json`:", "text").splitlines()
    command, expected = shown[0], shown[1:]
    assert command.startswith("$ rlft validate ")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(validate, command.split()[3:])
    assert result.exit_code == 1
    assert result.output.splitlines() == expected


def source_codes() -> set[str]:
    codes: set[str] = set()
    folder = Path(rlft.datasets.__file__).parent
    patterns = [
        r'code="([a-z0-9-]+)"',
        r'"(?:error|warning)",\s*"([a-z0-9-]+)"',
        r'_file_problem\(\s*"([a-z0-9-]+)"',
    ]
    for module in folder.glob("*.py"):
        text = module.read_text()
        for pattern in patterns:
            codes.update(re.findall(pattern, text))
    return codes - {"error", "warning"}


def test_every_problem_code_is_documented() -> None:
    codes = source_codes()
    assert len(codes) > 40  # the scan works
    catalogue = DOC[DOC.index("## Every problem, with an example") :]
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", catalogue, flags=re.MULTILINE))
    assert codes - documented == set()
    assert documented - codes == set()  # and no stale entries
