"""Registers the ``azure`` provider. Imports nothing heavy: ``azure.identity`` loads only when
Entra ID auth is used."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.azure import _facts
from rlft_providers.azure._settings import AzureSettings

__all__ = ["rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the ``azure`` provider spec."""
    registry.add(
        ProviderSpec(
            name="azure",
            settings=AzureSettings,
            extra="azure",
            requires=(),  # azure.identity is imported lazily, only for Entra ID auth
            factory="rlft_providers.azure._provider:AzureProvider",
            description="Azure AI Foundry / Azure OpenAI reinforcement fine-tuning",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            rates=_facts.RATES,
            hyperparameters=_facts.HYPERPARAMETERS,
            lifecycle=_facts.LIFECYCLE,
        )
    )
