from __future__ import annotations

import pickle
import re
import subprocess
import sys
from types import ModuleType

import pytest

import rlft
import rlft.exceptions as exc_module
from rlft import exceptions

HEAVY = {
    "openai",
    "boto3",
    "botocore",
    "azure",
    "torch",
    "trl",
    "transformers",
    "datasets",
    "nltk",
    "rouge_score",
    "rapidfuzz",
    "numpy",
    "pytest",
}


def test_all_is_sorted_and_complete() -> None:
    names = {n for n, v in vars(rlft).items() if n[0] != "_" and not isinstance(v, ModuleType)}
    names |= {"__version__", *rlft._LAZY}
    assert rlft.__all__ == sorted(rlft.__all__, key=str.casefold)
    assert set(rlft.__all__) == names


def test_public_classes_say_rlft_and_have_docstrings() -> None:
    for name in rlft.__all__:  # getattr also loads the lazy ones
        value = getattr(rlft, name)
        if isinstance(value, type):
            assert value.__module__ in {"rlft", "rlft.datasets"}, name
            assert value.__doc__ and value.__doc__.strip(), f"rlft.{name} has no docstring"


def test_lazy_names_load_on_first_access() -> None:
    code = (
        "import rlft, sys; assert 'sqlite3' not in sys.modules; "
        "from rlft import JobManager, StoredJob; assert 'sqlite3' in sys.modules; "
        "print(JobManager.__module__, StoredJob.__module__)"
    )
    out = subprocess.check_output([sys.executable, "-c", code], text=True).split()
    assert out == ["rlft", "rlft"]


def test_import_is_light() -> None:
    code = "import rlft, sys; print(' '.join({m.split('.')[0] for m in sys.modules}))"
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert not loaded & HEAVY, loaded & HEAVY


def test_every_exception_is_documented_in_the_tree() -> None:
    tree = exc_module.__doc__ or ""
    for name in exceptions.__all__:
        assert re.search(rf"(^|── ){name}\b", tree, re.MULTILINE), name


@pytest.mark.parametrize(
    "error",
    [
        exceptions.MissingDependencyError("provider 'bedrock'", package="boto3", extra="bedrock"),
        exceptions.UnknownProviderError("bedrok", known=["bedrock", "local"]),
        exceptions.GraderNotSupportedError(
            path="graders.why", target="openai", reason="no cosine", hint="use rouge_l"
        ),
        exceptions.HyperparameterError(
            provider="bedrock", name="epochs", value=99, allowed="1..50"
        ),
        exceptions.RateLimitError(
            "slow down", provider="openai", status_code=429, retry_after=2.0, request_id="req_1"
        ),
        exceptions.CapabilityError(provider="bedrock", operation="pause", reason="no pause API"),
        exceptions.DuplicateProviderError(name="acme", factories=["a:A", "b:B"]),
        exceptions.PluginLoadError(name="acme", value="acme_plugin"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error: exceptions.RLFTError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_error_messages_name_the_fix() -> None:
    missing = exceptions.MissingDependencyError(
        "provider 'bedrock'", package="boto3", extra="bedrock"
    )
    assert str(missing) == "provider 'bedrock' needs boto3: pip install 'rlft[bedrock]'"
    assert isinstance(missing, ImportError)
    unknown = exceptions.UnknownProviderError("bedrok", known=["bedrock", "local"])
    assert "did you mean 'bedrock'?" in str(unknown)
    assert isinstance(unknown, LookupError)
    limited = exceptions.RateLimitError(
        "slow down", provider="openai", retry_after=2.0, request_id="req_1"
    )
    assert str(limited) == "[openai] slow down (request id req_1)"
    assert limited.retry_after == 2.0
