"""Every hosted-backend example runs as written, on the fake backend (STYLE 2.14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTED = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def test_every_example_is_covered() -> None:
    assert HOSTED == ["azure_rft.py", "bedrock_rft.py", "openai_rft.py", "tinker_rft.py"]


@pytest.mark.parametrize("example", HOSTED)
def test_hosted_example_runs_on_the_fake_backend(example: str, tmp_path: Path) -> None:
    env = {**os.environ, "RLFT_PROVIDER": "fake", "RLFT_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ended succeeded" in done.stdout
