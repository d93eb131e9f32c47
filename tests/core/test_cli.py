from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import rlft
from rlft.cli import main


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rlft, version {rlft.__version__}"


def test_providers_lists_every_builtin_with_origin_and_capabilities() -> None:
    result = CliRunner().invoke(main, ["providers", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {"local", "openai", "azure", "bedrock", "fake"} <= set(rows)
    fake = rows["fake"]
    assert fake["installed"] is True
    assert {"pause_job", "resume_job", "cancel_job", "list_events", "list_checkpoints"} <= set(
        fake["capabilities"]
    )
    assert set(rows["local"]["capabilities"]) >= {"download_results", "generate"}
    assert "2027-01-06" in rows["openai"]["lifecycle"]["note"]
    assert rows["openai"]["lifecycle"]["source"].startswith("https://")
    assert rows["fake"]["lifecycle"] is None
    assert rows["local"]["from"].startswith("built-in")
    assert [name for name, row in rows.items() if row["default"]] == ["local"]


def test_providers_table_renders() -> None:
    result = CliRunner().invoke(main, ["providers"])
    assert result.exit_code == 0, result.output
    assert "bedrock" in result.output and "fake" in result.output
    assert "azure: " in result.output and "2027-04-16" in result.output  # lifecycle notes


@pytest.mark.parametrize("argv", [["--help"], ["providers", "--help"]])
def test_help(argv: list[str]) -> None:
    assert CliRunner().invoke(main, argv).exit_code == 0


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlft", "--version"], capture_output=True, text=True, check=True
    )
    assert rlft.__version__ in out.stdout


def test_usage_errors_print_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLFT_PROFILE", "no-such-profile")
    result = CliRunner().invoke(main, ["providers"])
    assert result.exit_code == 2
    assert "unknown profile 'no-such-profile'" in result.output
    assert "Traceback" not in result.output
