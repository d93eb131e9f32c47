"""Registers the ``local`` provider. Imports nothing heavy: the provider class is a string."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.local import _facts
from rlft_providers.local._settings import LocalSettings

__all__ = ["LocalSettings", "rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the local TRL runner."""
    registry.add(
        ProviderSpec(
            name="local",
            settings=LocalSettings,
            extra="local",
            requires=("torch", "transformers", "trl"),
            description="GRPO with TRL on this machine, in a worker subprocess per job",
            factory="rlft_providers.local._provider:LocalProvider",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            rates=_facts.RATES,
            hyperparameters=_facts.HYPERPARAMETERS,
        )
    )
