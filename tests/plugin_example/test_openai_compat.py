"""``rlft.openai_compat``: the public face of the OpenAI-compatible wire layer for plugins."""

from __future__ import annotations

import subprocess
import sys

import rlft.openai_compat as public
import rlft.openai_compat as wire
from rlft.testing import _fake_openai_api as _fake_server

HEAVY = {"openai", "boto3", "botocore", "azure", "torch", "trl", "transformers", "datasets"}


def test_every_name_is_the_wire_layers_own_object() -> None:
    """A re-export, not a copy: a plugin subclasses exactly what the built-ins subclass."""
    for name in public.__all__:
        origin = wire if hasattr(wire, name) else _fake_server
        assert getattr(public, name) is getattr(origin, name), name


def test_all_is_complete() -> None:
    names = {n for n in vars(public) if not n.startswith("_") and n != "annotations"}
    assert set(public.__all__) == names


def test_classes_and_functions_are_documented() -> None:
    for name in public.__all__:
        value = getattr(public, name)
        if isinstance(value, type) or (callable(value) and hasattr(value, "__code__")):
            assert (value.__doc__ or "").strip(), f"rlft.openai_compat.{name} has no docstring"


def test_import_is_light_and_rlft_does_not_import_it() -> None:
    code = (
        "import sys, rlft\n"
        "before = 'rlft.openai_compat' in sys.modules\n"
        "import rlft.openai_compat\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:]))\n"
        "print(before, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *sorted(HEAVY)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False []"
