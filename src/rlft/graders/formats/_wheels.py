"""Install a grader's libraries for AWS Lambda's platform, cached, with pip.

Lambda runs Linux (x86_64 or arm64) and its own Python, so compiled libraries (rapidfuzz,
regex, numpy) must be wheels built for that platform, not whatever this machine has. pip does
that with ``--platform``/``--python-version``/``--only-binary=:all:`` into a ``--target``
folder. A library published only as a source archive (rouge-score) is built into a wheel here
and used only if it is pure Python (``py3-none-any``), which runs anywhere.

Results are cached under ``~/.cache/rlft/lambda`` (or ``$RLFT_CACHE_DIR/lambda``), keyed by the
requirements and the platform, so only the first build of a grader touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

__all__ = [
    "Architecture",
    "PackagingError",
    "default_cache_dir",
    "importable",
    "install_for_lambda",
    "platform_tags",
]

Architecture = Literal["x86_64", "arm64"]
_LAYOUT = 1  # bump when the cached folder's layout changes
_COMPLETE = ".rlft-complete"


class PackagingError(RuntimeError):
    """pip could not provide a library for Lambda's platform; ``str()`` has pip's reason."""


def default_cache_dir() -> Path:
    """``$RLFT_CACHE_DIR/lambda``, else ``$XDG_CACHE_HOME/rlft/lambda`` or ``~/.cache/...``."""
    root = os.environ.get("RLFT_CACHE_DIR")
    if root:
        return Path(root) / "lambda"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "rlft" / "lambda"


def platform_tags(architecture: Architecture) -> tuple[str, ...]:
    """pip ``--platform`` values for Lambda (Amazon Linux 2023 has glibc 2.34)."""
    machine = "aarch64" if architecture == "arm64" else "x86_64"
    return (f"manylinux_2_28_{machine}", f"manylinux2014_{machine}")


def _pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def _tail(text: str, lines: int = 4) -> str:
    kept = [line for line in text.strip().splitlines() if not line.startswith("WARNING: Loc")]
    return " | ".join(kept[-lines:]) or "pip gave no reason"


def _build_pure_wheel(spec: str, wheelhouse: Path) -> bool:
    """Build ``spec`` (no dependencies) into ``wheelhouse``; keep it only if it is pure Python."""
    before = set(wheelhouse.glob("*.whl"))
    result = _pip(["wheel", "--no-deps", "--wheel-dir", str(wheelhouse), spec])
    built = set(wheelhouse.glob("*.whl")) - before
    if result.returncode != 0 or not built:
        return False
    impure = [wheel for wheel in built if not wheel.name.endswith("-none-any.whl")]
    for wheel in impure:
        wheel.unlink()
    return not impure


def install_for_lambda(
    specs: Iterable[str],
    *,
    python_version: str,
    architecture: Architecture,
    cache_dir: Path | None = None,
) -> Path:
    """A folder holding ``specs`` and their dependencies, installed for Lambda's platform.

    Args:
        specs: pip requirement specifiers (``"rapidfuzz==3.14.6"``).
        python_version: Lambda's Python, ``"3.12"``.
        architecture: ``"x86_64"`` or ``"arm64"``.
        cache_dir: Where installs are cached (default: ``default_cache_dir()``).

    Raises:
        PackagingError: pip failed (offline, no wheel for the platform, unknown package).
    """
    wanted = sorted(set(specs))
    cache = cache_dir or default_cache_dir()
    key_source = json.dumps([wanted, python_version, architecture, _LAYOUT])
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    target = cache / key
    if (target / _COMPLETE).is_file():
        return target
    wheelhouse = cache / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{key}.{os.getpid()}.partial"
    tried: set[str] = set()
    while True:
        shutil.rmtree(staging, ignore_errors=True)
        args = ["install", "--target", str(staging), "--only-binary=:all:", "--no-compile"]
        for tag in platform_tags(architecture):
            args += ["--platform", tag]
        args += ["--python-version", python_version, "--implementation", "cp"]
        args += ["--find-links", str(wheelhouse), "--quiet", *wanted]
        result = _pip(args)
        if result.returncode == 0:
            break
        # A source-only dependency (rouge-score): build it here if it is pure Python, retry.
        missing = re.search(r"No matching distribution found for (\S+)", result.stderr)
        spec = missing.group(1) if missing else None
        if spec is None or spec in tried or not _build_pure_wheel(spec, wheelhouse):
            shutil.rmtree(staging, ignore_errors=True)
            raise PackagingError(_tail(result.stderr or result.stdout))
        tried.add(spec)
    (staging / _COMPLETE).write_text(json.dumps(wanted) + "\n")
    try:
        staging.rename(target)
    except OSError:  # another build finished first: use it
        shutil.rmtree(staging, ignore_errors=True)
    return target


def importable(folder: Path, module: str) -> bool:
    """Whether top-level ``module`` is in ``folder`` (a package, a module or an extension)."""
    if (folder / module / "__init__.py").is_file() or (folder / f"{module}.py").is_file():
        return True
    if (folder / module).is_dir():  # a namespace package
        return True
    return any(folder.glob(f"{module}.*.so")) or any(folder.glob(f"{module}.*.pyd"))
