"""Registers the ``acme`` provider. The ``rlft`` entry point names this module.

Keep it light: rlft imports it whenever plugins load (``rlft providers``, every ``Client``), so it
imports only the settings model. The provider class, and ``httpx`` with it, load on first use.
"""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec

from rlft_acme._settings import AcmeSettings

__all__ = ["rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the ``acme`` provider spec."""
    registry.add(
        ProviderSpec(
            name="acme",
            settings=AcmeSettings,
            factory="rlft_acme._provider:AcmeProvider",  # "module:Class", imported on first use
            requires=("httpx",),  # import names the factory needs; a missing one is reported
            description="Acme Fine-Tuning (OpenAI-compatible RFT at a base URL)",
        )
    )
