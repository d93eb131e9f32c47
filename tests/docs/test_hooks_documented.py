"""``docs/hooks.md`` documents every hook in ``rlft.hookspecs``, with its exact signature.

Each hook has a heading ``### `name(arg: Type, ...) -> Return` ``; a hook without one, a heading
whose signature differs from the hookspec, or a heading for a hook that does not exist fails.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlft.hookspecs

HOOKS_MD = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
_HEADING = re.compile(r"^#{2,4} `(rlft_\w+\(.*\).*)`\s*$", re.MULTILINE)


def _annotation(value: Any) -> str:
    # hookspecs.py uses `from __future__ import annotations`: annotations are the source text.
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature(function: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return`` as written in the hookspec."""
    sig = inspect.signature(function)
    params = ", ".join(
        f"{p.name}: {_annotation(p.annotation)}" if p.annotation is not p.empty else p.name
        for p in sig.parameters.values()
    )
    result = (
        "" if sig.return_annotation is sig.empty else f" -> {_annotation(sig.return_annotation)}"
    )
    return f"{function.__name__}({params}){result}"


def hookspecs() -> dict[str, str]:
    """Every hook declared in ``rlft.hookspecs``: name -> signature."""
    marker = f"{rlft.hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets
    return {
        name: signature(value)
        for name, value in vars(rlft.hookspecs).items()
        if callable(value) and hasattr(value, marker)
    }


def problems(doc: str, specs: dict[str, str]) -> list[str]:
    """What is wrong between the documented headings and the hookspecs."""
    documented = {heading.partition("(")[0]: heading for heading in _HEADING.findall(doc)}
    found = []
    for name, expected in sorted(specs.items()):
        if name not in documented:
            found.append(f"{name} is not documented: add a heading `### `{expected}``")
        elif documented[name] != expected:
            found.append(
                f"{name}: documented as {documented[name]!r}, the hookspec is {expected!r}"
            )
    found += [f"{name} is documented but is not a hook" for name in documented.keys() - specs]
    return found


def test_there_are_hooks_to_check() -> None:
    assert "rlft_register_providers" in hookspecs()


def test_every_hook_is_documented_with_its_signature() -> None:
    assert problems(HOOKS_MD.read_text(encoding="utf-8"), hookspecs()) == []


def test_a_missing_or_changed_hook_is_reported() -> None:
    """The check itself can fail: an extra hook, a changed signature, a stale heading."""
    specs = {
        "rlft_register_providers": "rlft_register_providers(registry: ProviderRegistry) -> None",
        "rlft_new_hook": "rlft_new_hook(job: Job) -> None",
    }
    doc = "### `rlft_register_providers(registry) -> None`\n### `rlft_gone(x: int) -> None`\n"
    assert problems(doc, specs) == [
        "rlft_new_hook is not documented: add a heading `### `rlft_new_hook(job: Job) -> None``",
        "rlft_register_providers: documented as 'rlft_register_providers(registry) -> None', "
        "the hookspec is 'rlft_register_providers(registry: ProviderRegistry) -> None'",
        "rlft_gone is documented but is not a hook",
    ]
