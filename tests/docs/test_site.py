"""The docs site builds with ``--strict`` (offline) and its generated references are complete.

``scripts/test.sh`` builds the site too; this test also looks inside: the API reference has an
entry for every public name of every public module, and the CLI reference a section for every
command ``rlft`` has.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rlft.cli import main

ROOT = Path(__file__).resolve().parents[2]
API_PAGES = {
    "rlft": "rlft",
    "rlft.graders": "graders",
    "rlft.datasets": "datasets",
    "rlft.provider": "provider",
    "rlft.hookspecs": "hookspecs",
    "rlft.guards": "guards",
    "rlft.tracking": "tracking",
    "rlft.exceptions": "exceptions",
    "rlft.testing": "testing",
    "rlft.openai_compat": "openai_compat",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLFT_")}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return out


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("module", "page"), sorted(API_PAGES.items()))
def test_the_api_reference_lists_every_public_name(site: Path, module: str, page: str) -> None:
    ids = _ids(site / "api" / page / "index.html")
    public = [name for name in importlib.import_module(module).__all__ if name[0] != "_"]
    assert public
    missing = [name for name in public if f"{module}.{name}" not in ids]
    assert missing == [], f"{module}: not in the API reference: {missing}"


def _command_paths(command: click.Command, prefix: str) -> list[str]:
    paths = [prefix]
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            sub = command.get_command(click.Context(command), name)
            assert sub is not None
            paths += _command_paths(sub, f"{prefix}-{name}")
    return paths


def test_the_cli_reference_has_every_command(site: Path) -> None:
    html = (site / "cli" / "index.html").read_text(encoding="utf-8")
    paths = _command_paths(main, "rlft")
    assert len(paths) > 4
    missing = [path for path in paths if f'id="{path}"' not in html]
    assert missing == []
    assert "Sentinel" not in html  # mkdocs-click's table style prints click 8.3's UNSET


def test_every_public_module_has_a_page_in_the_nav(site: Path) -> None:
    nav = (site / "index.html").read_text(encoding="utf-8")
    for page in API_PAGES.values():
        assert f'href="api/{page}/"' in nav
