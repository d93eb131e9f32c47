"""Limits on what rlft reads from files, in one place (``docs/security.md`` lists them).

These are rlft's own guards, not provider limits: past them, input is not a dataset, a job or a
setting but a mistake or an attack, and refusing it early with a located error beats a
``RecursionError`` deep inside a grader, a template or pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["LONE_SURROGATE", "MAX_DEPTH", "deeper_than", "find_problem_value"]

MAX_DEPTH = 64
"""How deeply a JSON line, a TOML file or a job's values may nest (objects and arrays)."""

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate on its own: JSON can spell it (``"\\ud800"``) but no UTF-8 file can hold it,
so writing it back (a canonical hash, an upload, a terminal) would fail."""


def find_problem_value(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """The first ``(kind, path)`` in ``value`` that rlft refuses, or ``None``.

    ``kind`` is ``"too-deep"`` (nested over ``max_depth``) or ``"lone-surrogate"`` (a string or key
    holding one); ``path`` names where (``messages[0].content``). Iterative, so the check itself
    cannot overflow the stack.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, str):
            if LONE_SURROGATE.search(current):
                return "lone-surrogate", path or "<value>"
            continue
        if isinstance(current, Mapping | list | tuple) and depth >= max_depth:
            return "too-deep", path or "<value>"
        if isinstance(current, Mapping):
            for key, item in reversed(list(current.items())):
                name = str(key)
                if LONE_SURROGATE.search(name):
                    return "lone-surrogate", f"{path}.<key>" if path else "<key>"
                stack.append((item, f"{path}.{name}" if path else name, depth + 1))
        elif isinstance(current, list | tuple):
            for index in range(len(current) - 1, -1, -1):
                stack.append((current[index], f"{path}[{index}]", depth + 1))
    return None


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests more than ``limit`` dicts/lists deep (``find_problem_value``'s
    ``"too-deep"``), level by level with list comprehensions: several times faster than a walk
    that also visits every string, for the rows that need the check."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            items = node.values() if type(node) is dict else node
            below += [item for item in items if type(item) is dict or type(item) is list]
        level = below
    return False
