"""Registers the ``bedrock`` and ``bedrock-open-weight`` providers. Imports nothing heavy: boto3
loads with the provider."""

from __future__ import annotations

import rlft
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft_providers.bedrock import _facts
from rlft_providers.bedrock._settings import BedrockOpenWeightSettings, BedrockSettings

__all__ = ["rlft_register_providers"]


@rlft.hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Add the ``bedrock`` and ``bedrock-open-weight`` provider specs."""
    registry.add(
        ProviderSpec(
            name="bedrock",
            settings=BedrockSettings,
            extra="bedrock",
            requires=("boto3", "botocore"),
            factory="rlft_providers.bedrock._provider:BedrockProvider",
            description="AWS Bedrock: Nova RFT with a generated Lambda grader",
            statuses=_facts.STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
            hyperparameters=_facts.HYPERPARAMETERS,  # no RFT rate is published: no rates
        )
    )
    registry.add(
        ProviderSpec(
            name="bedrock-open-weight",
            settings=BedrockOpenWeightSettings,
            extra="bedrock",
            requires=("boto3", "botocore", "httpx"),
            factory="rlft_providers.bedrock._open_weight:BedrockOpenWeight",
            description="AWS Bedrock open-weight models (gpt-oss, Qwen3) on the "
            "OpenAI-compatible endpoint, with a generated Lambda grader",
            statuses=_facts.OPEN_WEIGHT_STATUSES,
            dataset=_facts.DATASET,
            graders=_facts.GRADERS,
        )
    )
