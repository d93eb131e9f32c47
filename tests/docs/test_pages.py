"""The docs pages' code works: snippets run, commands run, config loads, tables match the code.

- ``docs/snippets/*.py`` (included by the home and concepts pages) run on the fake backend.
- Every ``rlft ...`` command in the quick start runs, and says what the page says it says.
- Every hand-written ``toml`` block is a valid rlft configuration.
- The concepts page's status table is what each backend declares (``ProviderSpec.statuses``).
- The pages show no hand-written Python: only includes of tested files.
- ``docs/_hooks.py`` (link rewriting, nav pruning) does what the site relies on.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import rlft
from rlft._config import build_settings, load_config
from rlft._models import JobStatus
from rlft._plugins import find_provider
from rlft.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# The pages this suite owns; other engineers' pages are tested beside their code.
PAGES = [
    "index.md",
    "quickstart.md",
    "concepts.md",
    "hooks.md",
    "writing-a-provider.md",
    "cli.md",
    "troubleshooting.md",
]
_FENCE = re.compile(r"^(\s*)(`{3,})([^\n]*)\n(.*?)^\1\2\s*$", re.MULTILINE | re.DOTALL)


def blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for indent, _, info, body in _FENCE.findall(text):
        if info.split() and info.split()[0] == language:
            found.append("\n".join(line.removeprefix(indent) for line in body.splitlines()))
    return found


def is_include(body: str) -> bool:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith('--8<-- "') for line in lines)


# --- snippets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("home.py", ["score 1.0", "step 4 reward 0.9", "succeeded fake:"]),
        ("lifecycle.py", ["pending pending", "best checkpoint: 4", "succeeded"]),
    ],
)
def test_snippets_run_on_the_fake_backend(
    snippet: str, expected: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLFT_")}
    env |= {
        "RLFT_PROVIDER": "fake",
        "RLFT_HOME": str(tmp_path / "home"),
        # The fake keeps jobs in a file, as a real backend keeps them remotely, so a second
        # Client (the reattach example) finds them.
        "RLFT_FAKE_STATE_DIR": str(tmp_path / "fake"),
        "RLFT_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    out = subprocess.run(
        [sys.executable, str(DOCS / "snippets" / snippet)],
        cwd=ROOT,  # the snippets read examples/quickstart/data like a reader at the repo root
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for text in expected:
        assert text in out.stdout


def test_every_snippet_is_included_somewhere() -> None:
    text = "".join((DOCS / page).read_text(encoding="utf-8") for page in PAGES)
    for snippet in (DOCS / "snippets").glob("*.py"):
        assert f'--8<-- "docs/snippets/{snippet.name}' in text, snippet.name


# --- commands -------------------------------------------------------------------------------


def quickstart_commands() -> list[str]:
    return [
        line.strip()
        for body in blocks("quickstart.md", "bash")
        for line in body.splitlines()
        if line.strip().startswith("rlft ")
    ]


def test_the_quick_start_has_commands_to_run() -> None:
    assert len(quickstart_commands()) >= 4


@pytest.mark.parametrize("command", quickstart_commands())
def test_quick_start_commands_run(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)  # the page runs them from the repository root
    result = CliRunner().invoke(main, shlex.split(command)[1:], catch_exceptions=False)
    # 0: fine; 1: the data has errors (the page shows one such run). 2 is a usage error: a
    # renamed option or a missing file, i.e. a stale page.
    assert result.exit_code in (0, 1), result.output
    assert result.output.strip()
    if "--provider openai" in command and command.startswith("rlft validate"):
        assert result.exit_code == 1  # "It reports one error for all 1,000 rows"
        assert "role-not-supported (1,000 rows)" in result.output
        assert 'use role "developer"' in result.output
    elif command.startswith("rlft validate"):
        assert result.exit_code == 0 and "0 errors" in result.output


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_hand_written_toml_is_a_valid_configuration(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in blocks(page, "toml"):
        if is_include(body):
            continue
        (tmp_path / "rlft.toml").write_text(body, encoding="utf-8")
        config = load_config(cwd=tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
        spec = rlft.Client(autoload=False, cwd=tmp_path, store=False)._host.provider_spec(
            config.provider
        )
        build_settings(spec, config)  # raises ConfigurationError on an unknown key or value


# --- the status table -----------------------------------------------------------------------


def test_the_status_table_is_what_the_backends_declare() -> None:
    lines = (DOCS / "concepts.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| neutral |"))
    header, rows = lines[start], []
    for line in lines[start + 2 :]:  # after the |---| line, until the table ends
        if not line.startswith("|"):
            break
        rows.append(line)
    providers = [cell.strip() for cell in header.strip("|").split("|")][1:]
    documented: dict[str, dict[str, JobStatus]] = {p: {} for p in providers}
    for row in rows:
        neutral, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        for provider, cell in zip(providers, cells, strict=True):
            for word in re.findall(r"`(\w+)`", cell):
                documented[provider][word.lower()] = JobStatus(neutral.strip("`"))
    declared = {}
    for provider in providers:
        spec = find_provider(provider)
        assert spec is not None, provider
        # A backend that declares no words speaks the neutral ones, which map to themselves.
        declared[provider] = dict(spec.statuses) or {s.value: s for s in JobStatus}
    assert documented == declared


# --- no hand-written Python -----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_python_on_the_pages_is_included_from_tested_files(page: str) -> None:
    for body in blocks(page, "python"):
        assert is_include(body), f"{page}: a hand-written Python block; include a tested file"


# --- docs/_hooks.py -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rlft_docs_hooks", DOCS / "_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_links_out_of_docs_go_to_the_repository(hooks: ModuleType) -> None:
    repo = "https://github.com/rlft-dev/rlft"
    docs, page_dir = DOCS.resolve(), (DOCS / "providers").resolve()

    def rewrite(target: str) -> str:
        return str(hooks._rewrite(target, page_dir, docs, ROOT.resolve(), repo))

    assert rewrite("../../examples/openai_rft.py") == f"{repo}/blob/main/examples/openai_rft.py"
    assert rewrite("../../examples/plugin/") == f"{repo}/tree/main/examples/plugin"
    assert rewrite("../graders.md") == "../graders.md"  # a page: mkdocs checks it
    assert rewrite("../../examples/nope.py") == "../../examples/nope.py"  # broken: reported
    assert rewrite("https://example.com/x") == "https://example.com/x"


def test_nav_entries_for_unwritten_pages_are_left_out(hooks: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.md").write_text("# c")
    nav = [
        {"A": "a.md"},
        {"Later": "later.md"},
        {"B": [{"C": "b/c.md"}, {"D": "b/d.md"}]},
        {"Empty": [{"E": "e.md"}]},
        "https://example.com",
    ]
    assert hooks._prune(nav, tmp_path) == [{"A": "a.md"}, {"B": [{"C": "b/c.md"}]}, nav[-1]]
