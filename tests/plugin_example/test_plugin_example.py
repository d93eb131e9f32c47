"""``examples/plugin`` (rlft-acme) is a real third-party plugin: installed, found, tested.

The tutorial's shell steps (``examples/plugin/tutorial.sh``, included by
``docs/writing-a-provider.md``) run as written in a throwaway virtual environment: an editable
install, ``rlft providers`` from a fresh process, the plugin's own test suite (rlft's
conformance suite against the fake server), and a wheel build. Then the built wheel, installed
into a bare folder, is found through its entry point from a fresh interpreter.

Offline: the throwaway environment sees this venv's packages through a ``.pth`` file, and pip
builds without isolation or an index, with the hatchling the dev group installs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"
_JUNK = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "dist", "build"
)


@dataclass
class Tutorial:
    """The throwaway environment after ``tutorial.sh`` ran in it."""

    venv: Path
    project: Path
    env: dict[str, str]
    result: subprocess.CompletedProcess[str]


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RLFT_", "ACME_", "PYTEST_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        RLFT_HOME=str(home),
        COLUMNS="200",  # a wide `rlft providers` table: one row per provider
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's inverted switch: 0 means *no* isolation
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        HF_HUB_OFFLINE="1",
    )
    return env


def _throwaway_venv(path: Path) -> Path:
    """A venv without pip of its own that also sees this venv's packages (rlft, pip, pytest)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # addsitedir (not a bare path) so this venv's own .pth files, rlft's editable install among
    # them, are processed too.
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    (Path(purelib) / "_rlft_dev.pth").write_text(lines)
    # `rlft` on PATH, running in the throwaway interpreter (a console script would pin ours);
    # through sh, because a shebang line is cut at 127 bytes and temp paths can be long.
    script = path / "bin" / "rlft"
    script.write_text(f'#!/bin/sh\nexec "{python}" -m rlft "$@"\n')
    script.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Tutorial:
    base = tmp_path_factory.mktemp("plugin-example")
    project = base / "rlft-acme"
    shutil.copytree(EXAMPLE, project, ignore=_JUNK)  # the source tree stays clean
    venv = _throwaway_venv(base / "venv")
    env = _clean_env(base / "rlft-home")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", str(project / "tutorial.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Tutorial(venv=venv, project=project, env=env, result=result)


def _transcript(tutorial: Tutorial) -> str:
    return f"exit {tutorial.result.returncode}\n{tutorial.result.stdout}\n{tutorial.result.stderr}"


def test_the_tutorial_runs_as_written(tutorial: Tutorial) -> None:
    assert tutorial.result.returncode == 0, _transcript(tutorial)


def test_rlft_providers_lists_the_installed_plugin(tutorial: Tutorial) -> None:
    rows = re.findall(r"^│ acme .*$", tutorial.result.stdout, re.MULTILINE)  # the table row
    assert rows, _transcript(tutorial)
    assert "rlft-acme 0.1.0" in rows[0] and "yes" in rows[0], rows
    assert "acme: Acme Fine-Tuning is generally available" in tutorial.result.stdout  # lifecycle
    listed = subprocess.run(
        [str(tutorial.venv / "bin" / "python"), "-m", "rlft", "providers", "--json"],
        env=tutorial.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (acme,) = [row for row in json.loads(listed.stdout) if row["name"] == "acme"]
    # Flags are the method names; pause_job is not declared.
    assert acme["capabilities"] == [
        "list_jobs",
        "list_events",
        "list_checkpoints",
        "cancel_job",
        "download_results",
    ]


def test_the_plugins_own_suite_passes(tutorial: Tutorial) -> None:
    out = tutorial.result.stdout
    summary = re.search(r"=+ (.*) in [\d.]+s.* =+\s*$", out, re.MULTILINE)
    assert summary, _transcript(tutorial)
    counts = dict((word, int(n)) for n, word in re.findall(r"(\d+) (\w+)", summary.group(1)))
    assert set(counts) <= {"passed", "warning", "warnings"}, summary.group(0)  # no fail or skip
    assert counts["passed"] >= 15
    # The conformance suite ran (and the entry-point test, which needs the install, passed).
    assert "tests/test_conformance.py" in out and "tests/test_acme.py" in out


def test_the_wheel_carries_the_entry_point(tutorial: Tutorial) -> None:
    wheels = list((tutorial.project / "dist").glob("rlft_acme-0.1.0-*.whl"))
    assert len(wheels) == 1, _transcript(tutorial)
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read("rlft_acme-0.1.0.dist-info/entry_points.txt").decode()
    assert "[rlft]" in entry_points and "acme = rlft_acme._plugin" in entry_points
    assert {"rlft_acme/_plugin.py", "rlft_acme/_provider.py", "rlft_acme/py.typed"} <= set(names)
    assert not any(name.startswith("tests/") for name in names)


_PROBE = """
import json, sys
import rlft
client = rlft.Client(cwd=sys.argv[1], store=False)          # autoload: the default
plugins = {p.name: (p.distribution, p.version, p.providers) for p in client.plugins()}
loaded_before = "rlft_acme._provider" in sys.modules
provider = client.provider                                   # provider = "acme" in rlft.toml
print(json.dumps({
    "plugin": plugins.get("acme"),
    "provider_loaded_by_discovery": loaded_before,
    "provider": f"{type(provider).__module__}.{type(provider).__name__}",
    "base_url": provider.client.base_url,
    "secret_in_repr": "acme-live-key" in repr(provider),
}))
"""


def _probe(tmp_path: Path, env: dict[str, str], python: Path) -> dict[str, object]:
    (tmp_path / "rlft.toml").write_text(
        'provider = "acme"\n[acme]\nbase_url = "https://ft.acme.example/v1"\n'
    )
    out = subprocess.run(
        [str(python), "-c", _PROBE, str(tmp_path)],
        env=env | {"ACME_API_KEY": "acme-live-key"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_the_editable_install_is_found_from_a_fresh_process(
    tutorial: Tutorial, tmp_path: Path
) -> None:
    assert tutorial.result.returncode == 0, _transcript(tutorial)
    found = _probe(tmp_path, tutorial.env, tutorial.venv / "bin" / "python")
    assert found == {
        "plugin": ["rlft-acme", "0.1.0", ["acme"]],
        "provider_loaded_by_discovery": False,  # the hook module is light; the class loads late
        "provider": "rlft_acme._provider.AcmeProvider",
        "base_url": "https://ft.acme.example/v1/",
        "secret_in_repr": False,
    }


def test_the_built_wheel_is_found_from_a_fresh_process(tutorial: Tutorial, tmp_path: Path) -> None:
    """What a user gets from ``pip install rlft-acme``: the wheel, not the source tree."""
    (wheel,) = (tutorial.project / "dist").glob("*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        env=tutorial.env,
        check=True,
        capture_output=True,
    )
    # This interpreter (where rlft is installed) plus the bare folder: nothing from the tutorial.
    env = tutorial.env | {"PYTHONPATH": str(target)}
    found = _probe(tmp_path, env, Path(sys.executable))
    assert found["plugin"] == ["rlft-acme", "0.1.0", ["acme"]]
    assert found["provider"] == "rlft_acme._provider.AcmeProvider"

    blocked = subprocess.run(
        [sys.executable, "-c", "import rlft; print(rlft.Client(store=False).provider_specs())"],
        env=env | {"RLFT_BLOCKED_PLUGINS": "acme"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert blocked.returncode == 0, blocked.stderr
    assert "'acme'" not in blocked.stdout and "'openai'" in blocked.stdout


_FACTS = """
import json
from rlft.guards import default_rates
from rlft.provider import map_status
print(json.dumps({
    "warming_up": map_status("acme", "warming_up").value,
    "evaluating": map_status("acme", "EVALUATING").value,
    "rate": default_rates().hourly("acme", "acme-large-2"),
}))
"""


def test_the_plugins_own_facts_are_used_with_no_edit_to_rlft(
    tutorial: Tutorial, tmp_path: Path
) -> None:
    """Installed, the plugin's status words, dataset rule and rates work from fresh processes."""
    assert tutorial.result.returncode == 0, _transcript(tutorial)
    python = str(tutorial.venv / "bin" / "python")
    facts = subprocess.run(
        [python, "-c", _FACTS], env=tutorial.env, capture_output=True, text=True, timeout=60
    )
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout) == {
        "warming_up": "pending",
        "evaluating": "running",
        "rate": 48.0,
    }

    row = {
        "messages": [
            {"role": "system", "content": "Route it."},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Where is my parcel?"},
        ]
    }
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(row) + "\n")
    validate = [python, "-m", "rlft", "validate", str(data), "--format", "json"]
    generic = subprocess.run(validate, env=tutorial.env, capture_output=True, text=True, timeout=60)
    assert generic.returncode == 0, generic.stdout + generic.stderr
    acme = subprocess.run(
        [*validate, "--provider", "acme"],
        env=tutorial.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert acme.returncode == 1, acme.stdout + acme.stderr
    (problem,) = json.loads(acme.stdout)["problems"]
    assert (problem["code"], problem["field"], problem["line"]) == (
        "role-not-supported",
        "messages[1].role",
        1,
    )
    assert 'use role "system" for instructions on Acme' in problem["fix"]
