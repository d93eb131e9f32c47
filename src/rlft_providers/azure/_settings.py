"""Settings of the ``azure`` provider: ``[azure]`` in ``rlft.toml``, ``AZURE_*`` env vars."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from rlft.provider import ProviderSettings

__all__ = [
    "ARM_API_VERSION",
    "DEFAULT_API_VERSION",
    "DEFAULT_SCOPE",
    "TRAINING_TYPES",
    "TRAINING_TYPES_SOURCE",
    "AzureSettings",
]

DEFAULT_API_VERSION = "2025-04-01-preview"
"""The classic ``api-version`` Microsoft's RFT samples use (reference/openai_azure.md §5.1)."""
DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The Entra ID scope of the classic data-plane docs; newer v1 docs use ``https://ai.azure.com/.default``."""
ARM_SCOPE = "https://management.azure.com/.default"
ARM_API_VERSION = "2025-09-01"
"""A stable ``Microsoft.CognitiveServices`` api-version of Azure's ARM spec
(Azure/azure-rest-api-specs, resource-manager readme); azure-mgmt-cognitiveservices 14.1's
default. A test pins it to the vendored list of the spec's stable versions."""
TRAINING_TYPES = ("globalStandard", "standard", "developerTier")
"""``trainingType`` as Microsoft's own fine-tuning scripts send it."""
TRAINING_TYPES_SOURCE = (
    "Microsoft's fine-tuning scripts, microsoft/GitHub-Copilot-for-Azure "
    "plugin/skills/microsoft-foundry/finetuning/scripts/submit_training.py"
)

_SUFFIXES = re.compile(r"(/openai(/v1)?)?/*$")


class AzureSettings(ProviderSettings):
    """How to reach an Azure OpenAI / Foundry resource, and where to deploy checkpoints.

    The endpoint comes from ``AZURE_OPENAI_ENDPOINT`` or ``[azure] endpoint``; the key, when you
    use one, only from ``AZURE_OPENAI_API_KEY``. Without a key, Entra ID is used through
    ``azure.identity.aio.DefaultAzureCredential`` (``pip install 'rlft[azure]'``).
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {
        "api_key": "AZURE_OPENAI_API_KEY",
        "endpoint": "AZURE_OPENAI_ENDPOINT",
        "subscription_id": "AZURE_SUBSCRIPTION_ID",
    }

    endpoint: str | None = None
    """The resource endpoint, ``https://<resource>.openai.azure.com`` (a pasted ``/openai`` or
    ``/openai/v1`` suffix is removed)."""
    api: Literal["classic", "v1"] = "classic"
    """``classic``: ``{endpoint}/openai/...?api-version=...``; ``v1``: ``{endpoint}/openai/v1/...``
    without ``api-version`` (the GA "next generation" API, where the alpha graders endpoints are
    documented)."""
    api_version: str = DEFAULT_API_VERSION
    """The classic API's ``api-version``; ignored by ``api = "v1"``."""
    auth: Literal["auto", "api_key", "entra"] = "auto"
    """``auto``: the API key when one is set, else Entra ID."""
    api_key: SecretStr | None = None
    """The resource key (``AZURE_OPENAI_API_KEY``), sent as the ``api-key`` header."""
    entra_scope: str = DEFAULT_SCOPE
    """The token scope for Entra ID (``https://ai.azure.com/.default`` on newer v1 docs)."""
    training_type: str | None = None
    """The body's ``trainingType``: ``globalStandard``, ``standard`` or ``developerTier``, in any
    case (sent as Microsoft's scripts spell it); Microsoft's RFT sample recommends setting it.
    ``provider_options={"trainingType": ...}`` overrides it per job."""
    preflight_deployment: str | None = None
    """The deployment ``rlft preflight`` samples (Azure serves chat through deployments, not base
    model names); by default the job's ``model`` is used as the deployment name."""
    send_metadata: bool | None = None
    """Send job ``metadata`` (labels and the idempotency key). By default only on the v1 route,
    whose spec has it on create; the classic 2025-04-01-preview spec has no ``metadata``, so
    there rlft finds a lost create by a key tag at the end of the model suffix instead."""
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    file_poll_interval: float = Field(default=2.0, gt=0)
    file_processing_timeout: float = Field(default=1800.0, gt=0)

    # Deploying a checkpoint goes through Azure Resource Manager, not the data plane.
    subscription_id: str | None = None
    """The resource's subscription (``AZURE_SUBSCRIPTION_ID``), for deployments."""
    resource_group: str | None = None
    """The resource's resource group, for deployments."""
    account_name: str | None = None
    """The Azure OpenAI / Foundry account name; defaults to the endpoint's first host label."""
    arm_endpoint: str = "https://management.azure.com"
    arm_api_version: str = ARM_API_VERSION
    """The ARM ``api-version`` for deployments (a stable ``Microsoft.CognitiveServices`` one)."""
    arm_scope: str = ARM_SCOPE
    deployment_sku: str = "standard"
    """The deployment SKU (``standard``, ``globalstandard``, ``developer``...)."""
    deployment_capacity: int = Field(default=1, ge=1)

    @field_validator("training_type")
    @classmethod
    def _spell_training_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for known in TRAINING_TYPES:
            if value.strip().casefold() == known.casefold():
                return known
        raise ValueError(
            f"must be one of {', '.join(TRAINING_TYPES)} (any case; source: "
            f"{TRAINING_TYPES_SOURCE})"
        )

    @field_validator("endpoint")
    @classmethod
    def _normalise_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (https://<resource>.openai.azure.com)")
        return _SUFFIXES.sub("", value)
