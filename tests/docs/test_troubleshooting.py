"""``docs/troubleshooting.md`` covers every error class, and its example messages are real.

Each class in ``rlft.exceptions.__all__`` has a ``### `Name` `` section that names its parent and
has a **Fix:**; every example message shown in a ``text`` block is produced, here, by the code
path (or constructor) that raises it, so a reworded error cannot leave a stale example behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

import rlft
import rlft.exceptions as exc
from rlft.graders import TextSimilarity, from_openai
from rlft.graders import compile as compile_grader
from rlft.testing import default_conformance_spec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"
_SECTION = re.compile(r"^### `(\w+)`\s*$(.*?)(?=^##)", re.MULTILINE | re.DOTALL)
_TEXT_BLOCK = re.compile(r"^```text\n(.*?)^```", re.MULTILINE | re.DOTALL)


def sections() -> dict[str, str]:
    text = PAGE.read_text(encoding="utf-8") + "\n##"  # the last section ends too
    return dict(_SECTION.findall(text))


def raised(call: Callable[[], object]) -> str:
    with pytest.raises(exc.RLFTError) as info:
        call()
    return str(info.value)


def _client(tmp: Path, **kwargs: object) -> rlft.Client:
    return rlft.Client(autoload=False, cwd=tmp, store=False, **kwargs)  # type: ignore[arg-type]


def examples(tmp: Path) -> dict[str, set[str]]:
    """Messages produced by rlft itself, by class: what the page may show."""
    hp = default_conformance_spec().model_copy(
        update={"hyperparameters": rlft.Hyperparameters(epochs=80)}
    )
    cosine = TextSimilarity(
        name="why",
        input="{{ sample.output_text }}",
        reference="{{ item.reason }}",
        evaluation_metric="cosine",
    )
    bad_operation = {
        "type": "multi",
        "name": "triage",
        "graders": {
            "label": {
                "type": "string_check",
                "name": "label",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.label }}",
                "operation": "equals",
            }
        },
        "calculate_output": "label",
    }
    openai = {"api_key": "sk-test"}
    return {
        "ConfigurationError": {
            raised(lambda: _client(tmp, provider="openai").provider),
            raised(lambda: _client(tmp, provider="openai", settings={"timeout": 0}).provider),
        },
        "UnknownProviderError": {raised(lambda: _client(tmp, provider="bedrok").provider)},
        "GraderValidationError": {raised(lambda: from_openai(bad_operation))},
        "GraderNotSupportedError": {raised(lambda: compile_grader(cosine, "openai"))},
        "HyperparameterError": {
            raised(lambda: _client(tmp, provider="openai", settings=openai).jobs.check(hp))
        },
        # Raised from places that need a backend's SDK or a broken install; the constructor
        # formats the message, so it is what is checked.
        "MissingDependencyError": {
            str(exc.MissingDependencyError("provider 'bedrock'", package="boto3", extra="bedrock"))
        },
        "CapabilityError": {str(exc.CapabilityError(provider="bedrock", operation="pause"))},
        "PluginLoadError": {str(exc.PluginLoadError(name="acme", value="rlft_acme._plugin"))},
        "DuplicateProviderError": {
            str(
                exc.DuplicateProviderError(
                    name="acme",
                    factories=("rlft_acme._provider:AcmeProvider", "acme_rft.plugin:Provider"),
                )
            )
        },
    }


def test_every_error_class_has_a_section() -> None:
    documented = sections()
    assert sorted(documented) == sorted(exc.__all__)


@pytest.mark.parametrize("name", exc.__all__)
def test_each_section_names_the_parent_and_the_fix(name: str) -> None:
    body = sections()[name]
    cls = getattr(exc, name)
    parent = re.search(r"^\*Parent:\* `(\w+)`", body, re.MULTILINE)
    assert parent, f"{name}: add a line '*Parent:* `{cls.__bases__[0].__name__}`'"
    assert parent.group(1) == cls.__bases__[0].__name__
    fix = re.search(r"^\*\*Fix:\*\* (\S.*)", body, re.MULTILINE)
    assert fix and len(fix.group(1)) > 20, f"{name}: the section needs a '**Fix:** ...' paragraph"


def test_the_tree_lists_every_class() -> None:
    tree = _TEXT_BLOCK.search(PAGE.read_text(encoding="utf-8"))
    assert tree
    listed = re.findall(r"(\w+Error)\b", tree.group(1))
    assert sorted(set(listed)) == sorted(exc.__all__)


def test_example_messages_are_what_rlft_raises(tmp_path: Path) -> None:
    real = examples(tmp_path)
    documented = {name: _TEXT_BLOCK.findall(body) for name, body in sections().items()}
    for name, shown in documented.items():
        for block in shown:
            assert block.strip() in real.get(name, set()), (
                f"{name}: the example {block.strip()!r} is not a message rlft produces; "
                f"it produces {sorted(real.get(name, set()))}"
            )
    for name, messages in real.items():
        assert {block.strip() for block in documented[name]} == messages, name
