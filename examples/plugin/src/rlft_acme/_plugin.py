"""Registers the ``acme`` provider. The ``rlft`` entry point names this module.

Keep it light: rlft imports it whenever plugins load (``rlft providers``, every ``Client``), so it
imports only the settings model and the facts (plain data). The provider class, and ``httpx``
with it, load on first use.
"""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec

from rlft_acme import _facts
from rlft_acme._settings import AcmeSettings

__all__ = ["rlft_register_providers"]


# --8<-- [start:register]
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
            # The backend's facts, checked when plugins load (see _facts.py):
            statuses=_facts.STATUSES,  # its status words -> neutral JobStatus
            dataset=_facts.DATASET,  # its dataset rules, and how rows are uploaded
            graders=_facts.GRADERS,  # the grader format it takes
            rates=_facts.RATES,  # its prices, for BudgetGuard
            hyperparameters=_facts.HYPERPARAMETERS,  # names, ranges, and the code checking them
            lifecycle=_facts.LIFECYCLE,  # shown by `rlft providers`
        )
    )


# --8<-- [end:register]
