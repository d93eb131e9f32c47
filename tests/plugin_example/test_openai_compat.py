"""``rlft.openai_compat``: the public face of the OpenAI-compatible wire layer for plugins."""

from __future__ import annotations

import subprocess
import sys

import rlft.openai_compat as public
import rlft.openai_compat as wire
import rlft.testing

HEAVY = {"openai", "boto3", "botocore", "azure", "torch", "trl", "transformers", "datasets"}


def test_every_name_is_the_wire_layers_own_object() -> None:
    """A re-export, not a copy: a plugin subclasses exactly what the built-ins subclass."""
    for name in public.__all__:
        assert getattr(public, name) is getattr(wire, name), name


def test_the_fake_api_lives_in_rlft_testing_not_in_the_wire_layer() -> None:
    """Plugins import the wire layer at runtime; the fake is test code, in ``rlft.testing``."""
    assert "FakeFineTuningServer" not in public.__all__
    assert "FakeFineTuningServer" in rlft.testing.__all__
    code = "import sys, rlft.openai_compat; print(sorted(m for m in sys.modules if 'testing' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "rlft.testing" not in out.stdout


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
