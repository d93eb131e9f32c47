"""`rlft serve` as a command: the real port, config, and the refusal to listen openly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from rlft.cli import main
from rlft.serve._cli import _config_section
from rlft.serve._options import hash_key

from .conftest import GRADER, project

SRC = Path(__file__).resolve().parents[2] / "src"


def test_serve_prints_the_real_port_and_answers(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    (folder / "label.json").write_text(json.dumps(GRADER))
    env = {**os.environ, "PYTHONPATH": str(SRC), "RLFT_SERVE_API_KEYS": "sk-cli-key-1234"}
    # A keys file need hold no secret: a hashed key works as the key itself.
    (folder / "keys.txt").write_text(f"# ops\nsha256:{hash_key('sk-hashed-key-5678')}\n")
    command = ["serve", "--port", "0", "--provider", "fake", "--grader", "label=label.json"]
    command += ["--keys-file", "keys.txt"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlft", *command],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # blocks until the server says where it is
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.removeprefix("listening on ")
        port = int(url.rsplit(":", 1)[1])
        assert port not in (0, 8000)
        # The socket is bound before the line is printed; uvicorn accepts once it started.
        with httpx.Client(base_url=url, transport=httpx.HTTPTransport(retries=20)) as client:
            assert client.get("/v1/files").status_code == 401
            ok = client.get("/v1/files", headers={"Authorization": "Bearer sk-cli-key-1234"})
            assert ok.status_code == 200 and ok.json()["data"] == []
            hashed = client.get("/v1/files", headers={"Authorization": "Bearer sk-hashed-key-5678"})
            assert hashed.status_code == 200
            scored = client.post(
                "/graders/label/score",
                headers={"api-key": "sk-cli-key-1234"},
                json={"sample": "billing", "item": {"label": "billing"}, "trace_id": "t"},
            )
            assert scored.json() == {"score": 1.0}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err


def test_serve_refuses_an_open_address_without_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(project(tmp_path / "p"))
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output
    assert "RLFT_SERVE_API_KEYS" in result.output


def test_bad_grader_flag_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(project(tmp_path / "p"))
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--grader", "nofile"])
    assert result.exit_code == 2 and "use NAME=FILE" in result.output


def test_serve_table_in_rlft_toml(tmp_path: Path) -> None:
    folder = project(
        tmp_path / "p",
        extra='[serve]\nprovider = "fake"\nkeys_file = "keys.txt"\n'
        '[serve.models]\n"rlft/*" = "local"\n"amazon.nova-*" = "bedrock"\n'
        '[serve.graders]\nlabel = "graders/label.json"\n',
    )
    found = _config_section(folder)
    assert found["provider"] == "fake" and found["keys_file"] == "keys.txt"
    assert found["models"] == {"rlft/*": "local", "amazon.nova-*": "bedrock"}
    assert found["graders"] == {"label": folder / "graders" / "label.json"}

    from rlft.serve import ServeOptions

    opts = ServeOptions(provider="fake", models=found["models"])
    assert opts.backend_for("rlft/qwen-0.5b") == "local"
    assert opts.backend_for("amazon.nova-lite-v1") == "bedrock"
    assert opts.backend_for("gpt-4o") == "fake"


def test_reward_gap_flag_builds_the_guard() -> None:
    from rlft.guards import RewardGapGuard
    from rlft.serve._cli import _guards

    assert _guards(None) == ()
    (guard,) = _guards(0.3)
    assert isinstance(guard, RewardGapGuard) and guard.threshold == 0.3


def test_without_the_serve_extra_the_fix_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(project(tmp_path / "p"))
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "pip install 'rlft[serve]'" in result.output and "Traceback" not in result.output
