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
