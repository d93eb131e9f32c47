"""The README's example runs as written (on the fake backend, so it takes a second)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_example_runs(tmp_path: Path) -> None:
    code = re.search(r"## A taste\n\n```python\n(.*?)```", README, re.S)
    assert code, "the README lost its example"
    script = tmp_path / "example.py"
    script.write_text(code.group(1), encoding="utf-8")
    env = {**os.environ, "RLFT_PROVIDER": "fake", "RLFT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "score=1.0" in done.stdout
    assert "best checkpoint: fake:" in done.stdout


def test_the_readme_commands_are_the_ci_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test.sh" in ci and "./scripts/test.sh" in README
    assert "./scripts/quickstart.sh" in README
    for script in ("scripts/test.sh", "scripts/quickstart.sh", "scripts/setup.sh"):
        assert os.access(ROOT / script, os.X_OK), script
