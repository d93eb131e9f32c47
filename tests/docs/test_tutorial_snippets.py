"""Every code block of the plugin tutorial comes from a tested file.

``docs/writing-a-provider.md`` (and ``docs/hooks.md``) show code only through
``--8<-- "examples/plugin/<file>[:section]"`` includes. ``tests/plugin_example`` installs that
package, runs ``tutorial.sh`` as written and runs the package's own tests, so each included
file is executed. A hand-written block, an include from elsewhere, a missing file or section,
or a layout listing that differs from the real folder fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "plugin"
PAGES = ["writing-a-provider.md", "hooks.md"]
TESTED = "examples/plugin/"  # everything under it runs in tests/plugin_example

_FENCE = re.compile(r"^(`{3,})([^\n]*)\n(.*?)^\1\s*$", re.MULTILINE | re.DOTALL)
_INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')
_JUNK = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "dist", "build"}


def blocks(page: str) -> list[tuple[str, str]]:
    """``(info string, body)`` of every fenced block in ``docs/<page>``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [(info.strip(), body) for _, info, body in _FENCE.findall(text)]


def includes(page: str) -> list[tuple[str, str | None]]:
    found = []
    for _, body in blocks(page):
        for line in body.splitlines():
            if match := _INCLUDE.match(line.strip()):
                found.append((match.group(1), match.group(2)))
    return found


def real_tree() -> set[str]:
    return {
        path.relative_to(EXAMPLE).as_posix()
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and not _JUNK & set(path.relative_to(EXAMPLE).parts)
        and not path.name.endswith((".pyc", ".egg-info"))
    }


def listed_tree(block: str) -> set[str]:
    """The files a ``tree``-style listing names (``├── name``, four columns per level)."""
    stack: list[str] = []
    files = set()
    for line in block.splitlines()[1:]:  # the first line is the root folder
        match = re.match(r"^([│ ]*)[├└]── (.+)$", line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match.group(1)) // 4
        name = match.group(2).strip()
        stack[depth:] = [name.rstrip("/")]
        if not name.endswith("/"):
            files.add("/".join(stack))
    return files


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_an_include_from_a_tested_file(page: str) -> None:
    for info, body in blocks(page):
        if info == "text" and page == "writing-a-provider.md":
            continue  # the layout listing: checked against the real folder below
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        assert lines, f"{page}: an empty code block"
        for line in lines:
            match = _INCLUDE.match(line)
            assert match, f"{page}: {line!r} is hand-written; include it from {TESTED} instead"
            assert match.group(1).startswith(TESTED), f"{page}: {line!r} is not from {TESTED}"


@pytest.mark.parametrize("page", PAGES)
def test_every_include_exists_with_its_section(page: str) -> None:
    assert includes(page), f"{page} includes nothing"
    for path, section in includes(page):
        file = ROOT / path
        assert file.is_file(), f"{page}: {path} does not exist"
        if section is not None:
            text = file.read_text(encoding="utf-8")
            for edge in ("start", "end"):
                assert f"--8<-- [{edge}:{section}]" in text, f"{path} lacks [{edge}:{section}]"


def test_every_module_of_the_plugin_is_shown() -> None:
    shown = {path for path, _ in includes("writing-a-provider.md")}
    modules = {
        f"{TESTED}{name}"
        for name in real_tree()
        if name.endswith(".py") and (EXAMPLE / name).read_text().count("\n") > 10
    }
    assert modules - shown == set(), "the tutorial should walk through every module"


def test_the_layout_listing_is_the_real_folder() -> None:
    (layout,) = [body for info, body in blocks("writing-a-provider.md") if info == "text"]
    assert listed_tree(layout) == real_tree()


def test_the_checks_catch_a_hand_written_block() -> None:
    page = "```python\nprint('hi')\n```\n"
    (_, body) = _FENCE.findall(page)[0][1:]
    assert not _INCLUDE.match(body.strip())
    assert listed_tree("root/\n├── a.py\n└── src/\n    └── b.py\n") == {"a.py", "src/b.py"}
