"""Registers the ``tinker`` provider. Imports nothing heavy: the provider class is a string."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.tinker import _facts
from rlft_providers.tinker._settings import TinkerSettings

__all__ = ["TinkerSettings", "rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the Tinker-protocol backend."""
    registry.add(
        ProviderSpec(
            name="tinker",
            settings=TinkerSettings,
            extra="tinker",
            requires=("tinker",),
            description="GRPO on a Tinker-protocol service (Tinker, Together, SkyRL tx): the "
            "loop and the graders run here, forward/backward and sampling there",
            factory="rlft_providers.tinker._provider:TinkerProvider",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            rates=_facts.RATES,
            hyperparameters=_facts.HYPERPARAMETERS,
            lifecycle=_facts.LIFECYCLE,
        )
    )
