"""Helpers for the dataset tests.

This folder has no ``__init__.py`` on purpose: as a package named ``datasets`` on ``sys.path`` it
would shadow Hugging Face ``datasets`` for the whole test session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def row(content: str = "What is 2 + 2?", **item: Any) -> dict[str, Any]:
    """A valid single-turn row with item fields."""
    return {"messages": [{"role": "user", "content": content}], **item}


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def writer(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """write = writer(tmp_path); write("name.jsonl", text_or_bytes) -> the path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return _write
