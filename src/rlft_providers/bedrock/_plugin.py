"""Registers the ``bedrock`` provider. Imports nothing heavy: boto3 loads with the provider."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.bedrock import _facts
from rlft_providers.bedrock._settings import BedrockSettings

__all__ = ["rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the ``bedrock`` provider spec."""
    registry.add(
        ProviderSpec(
            name="bedrock",
            settings=BedrockSettings,
            extra="bedrock",
            requires=("boto3", "botocore"),
            factory="rlft_providers.bedrock._provider:BedrockProvider",
            description="AWS Bedrock: Nova RFT with a generated Lambda grader; open-weight models "
            "through the OpenAI-compatible endpoint",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            hyperparameters=_facts.HYPERPARAMETERS,  # no RFT rate is published: no rates
        )
    )
