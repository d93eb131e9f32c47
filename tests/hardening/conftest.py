"""The hardening suite's setup: ``hardening_helpers`` importable, and a file writer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # test modules import hardening_helpers (importlib import mode)
    sys.path.insert(0, str(HERE))


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write text or bytes to a file under ``tmp_path``."""

    def write_file(name: str, content: Any) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write_file
