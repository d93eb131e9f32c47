"""Registers the ``openai`` provider. Imports nothing heavy: the wire client loads on first use."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.openai import _facts
from rlft_providers.openai._settings import OpenAISettings

__all__ = ["rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the ``openai`` provider spec."""
    registry.add(
        ProviderSpec(
            name="openai",
            settings=OpenAISettings,
            extra="openai",
            requires=(),
            factory="rlft_providers.openai._provider:OpenAIProvider",
            description="OpenAI reinforcement fine-tuning (and OpenAI-compatible services)",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            rates=_facts.RATES,
            hyperparameters=_facts.HYPERPARAMETERS,
            lifecycle=_facts.LIFECYCLE,
        )
    )
