"""Built-in backends are plugins like any other: they import only rlft's public modules.

The same rule holds for the example third-party plugin, and the core never imports a backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_rlft_imports(folder: Path) -> list[str]:
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for line, module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "rlft" and any(is_private(part) for part in parts[1:]):
                bad.append(f"{path.relative_to(folder)}:{line}: {module}")
    return bad


@pytest.mark.parametrize("folder", ["src/rlft_providers", "examples/plugin/src"])
def test_backends_import_only_public_rlft_modules(folder: str) -> None:
    assert private_rlft_imports(ROOT / folder) == []


def test_the_checker_sees_a_private_import(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from rlft._models import JobRecord\n"
        "from rlft.graders import _spec\n"
        "from rlft import __version__\n"
    )
    assert [row.split(": ")[1] for row in private_rlft_imports(tmp_path)] == [
        "rlft._models",
        "rlft._models.JobRecord",
        "rlft.graders._spec",
    ]


def test_the_core_never_imports_a_backend() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "src/rlft").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] == "rlft_providers"
    ]
    assert bad == []


# --- the core names no hosted backend ----------------------------------------------------------

# Where the core may write a hosted backend's id as a string: only where it names a *format* or a
# wire dialect that carries that vendor's name, never to branch on which backend is in use.
# Each entry: file -> (the ids allowed there, why).
NAMED_FORMATS: dict[str, tuple[frozenset[str], str]] = {
    "src/rlft/_facts.py": (frozenset({"openai"}), "the OpenAI grader JSON format's name"),
    "src/rlft/graders/_compile.py": (frozenset({"openai"}), "the OpenAI grader JSON format"),
    "src/rlft/graders/formats/lambda_.py": (
        frozenset({"openai", "bedrock"}),
        "judge APIs inside the Lambda: Bedrock Converse or an OpenAI-compatible endpoint",
    ),
    "src/rlft/graders/_runtime/lambda_handler.py": (
        frozenset({"openai"}),
        "the judge API inside the Lambda: an OpenAI-compatible endpoint",
    ),
    "src/rlft/serve/_graders.py": (
        frozenset({"openai"}),
        "rlft serve speaks OpenAI's grader API: the OpenAI grader JSON format",
    ),
    "src/rlft/_secrets.py": (
        frozenset({"azure"}),
        "the Azure SDK's logger name, whose records are redacted like every SDK's",
    ),
    "src/rlft/testing/_fake_openai_api.py": (
        frozenset({"openai", "azure"}),
        "the fake server's wire dialects (status words, error envelopes) of the OpenAI-style API",
    ),
    "src/rlft/graders/_spec.py": (
        frozenset({"openai"}),
        "Native.to_openai: the OpenAI grader JSON format; native targets are any provider id",
    ),
    "src/rlft/graders/formats/openai.py": (
        frozenset({"openai"}),
        "the OpenAI grader JSON format names itself in notices",
    ),
}


def hosted_builtin_ids() -> set[str]:
    """The built-in provider ids of hosted backends (not the local runner, not the fake)."""
    from rlft._plugins import builtin_plugins

    return {
        name
        for name, module in builtin_plugins().items()
        if module.startswith("rlft_providers.") and name != "local"
    }


def backend_names_in_code(path: Path, ids: set[str]) -> list[tuple[int, str]]:
    """String constants equal to a provider id, docstrings excepted."""
    tree = ast.parse(path.read_text(), filename=str(path))
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.lower() in ids
        and id(node) not in prose
    ]


def test_the_core_names_no_hosted_backend_in_code() -> None:
    ids = hosted_builtin_ids()
    assert ids == {"openai", "azure", "bedrock", "tinker"}  # read from rlft's own entry points
    bad = []
    for path in sorted((ROOT / "src/rlft").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        allowed = NAMED_FORMATS.get(rel, (frozenset(), ""))[0]
        bad += [
            f"{rel}:{line}: {value!r}"
            for line, value in backend_names_in_code(path, ids)
            if value.lower() not in allowed
        ]
    assert bad == [], "the core branches on a backend; declare the fact in its ProviderSpec"


def test_the_allow_list_is_still_needed() -> None:
    ids = hosted_builtin_ids()
    for rel, (allowed, _why) in NAMED_FORMATS.items():
        found = {value.lower() for _, value in backend_names_in_code(ROOT / rel, ids)}
        assert found == allowed, f"{rel}: allow-list {sorted(allowed)} but found {sorted(found)}"


def test_the_scan_sees_a_backend_name_but_not_prose(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        '"""Talks about bedrock."""\ndef f(p):\n    """openai"""\n    return p == "bedrock"\n'
    )
    assert backend_names_in_code(tmp_path / "m.py", {"bedrock", "openai"}) == [(4, "bedrock")]
