"""`import rlft` and the CLI stay light: Starlette and uvicorn load only when `rlft serve` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_import_rlft_and_the_cli_load_no_server() -> None:
    code = (
        "import sys, rlft, rlft.cli, rlft.serve\n"
        "from rlft.serve import ServeOptions, load_keys\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'multipart', 'python_multipart')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "rlft.serve.create_app\n"  # the lazy attribute loads the app module on first access
        "assert 'starlette' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
