"""The built-ins' declared facts agree with the code that acts on them.

The facts are data beside each backend; these tests keep the data and the backend's own check
code (which they reference, not replace) from drifting apart.
"""

from __future__ import annotations

import pytest

from rlft._facts import import_string
from rlft._plugins import builtin_plugins, find_provider
from rlft.provider import Hyperparameters, ProviderSpec


def spec(name: str) -> ProviderSpec:
    found = find_provider(name)
    assert found is not None, name
    return found


@pytest.mark.parametrize("name", ["openai", "azure", "bedrock", "local"])
def test_every_reference_names_a_callable(name: str) -> None:
    facts = spec(name)
    references = [facts.hyperparameters.check if facts.hyperparameters else None]
    references.append(facts.graders.compiler if facts.graders else None)
    dataset = facts.dataset
    references.append(dataset.render if dataset and ":" in dataset.render else None)
    for reference in filter(None, references):
        assert callable(import_string(reference)), reference


def test_openai_style_names_are_the_wire_layers() -> None:
    from rlft.openai_compat._request import _NEUTRAL_TO_WIRE

    for name in ("openai", "azure"):
        hp = spec(name).hyperparameters
        assert hp is not None and dict(hp.names) == _NEUTRAL_TO_WIRE
        assert set(hp.ranges) == set(hp.names)


def test_bedrock_names_are_its_rules() -> None:
    from rlft_providers.bedrock._rules import _NEUTRAL, RFT_FIELDS

    hp = spec("bedrock").hyperparameters
    assert hp is not None and dict(hp.names) == _NEUTRAL
    assert hp.ranges["epochs"] == RFT_FIELDS["epochCount"].describe() == "1 to 50"


def test_local_names_are_the_runners() -> None:
    from rlft_providers.local._plan import NEUTRAL_OWNED

    hp = spec("local").hyperparameters
    assert hp is not None
    assert {grpo: neutral for neutral, grpo in hp.names.items()} == {
        grpo: text.split(" ")[0] for grpo, text in NEUTRAL_OWNED.items()
    }


def test_every_mapped_name_is_a_neutral_hyperparameter() -> None:
    for name in builtin_plugins():
        hp = spec(name).hyperparameters
        if hp is not None:
            assert set(hp.names) <= set(Hyperparameters.model_fields), name


def test_the_builtins_declare_documented_rates_only() -> None:
    assert spec("openai").rates is not None and spec("azure").rates is not None
    assert spec("bedrock").rates is None  # no RFT rate in the reference: the user passes one
    for name in ("openai", "azure"):
        rates = spec(name).rates
        assert rates is not None and rates.source.startswith("https://")
