"""The ``azure`` provider: Azure OpenAI / Foundry reinforcement fine-tuning.

Two data-plane routes (reference/openai_azure.md §5.1): the classic
``{endpoint}/openai/...?api-version=...`` and the v1 ``{endpoint}/openai/v1/...``. Auth is the
resource key (``api-key`` header) or an Entra ID bearer token. Deployment goes through Azure
Resource Manager (§5.8), always with Entra ID.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

import httpx

from rlft.exceptions import ConfigurationError
from rlft.openai_compat import (
    Dialect,
    ErrorHint,
    OpenAICompatClient,
    OpenAICompatProvider,
    RetryPolicy,
    Sleep,
    segment,
)
from rlft.provider import Capabilities, Checkpoint
from rlft_providers.azure._auth import AsyncTokenCredential, CredentialSource, EntraToken
from rlft_providers.azure._settings import TRAINING_TYPES, TRAINING_TYPES_SOURCE, AzureSettings

if TYPE_CHECKING:
    from rlft.provider import JobSpec

__all__ = ["AzureProvider"]

log = logging.getLogger("rlft.providers")

# The suffix rule of the Azure spec and REST docs; the Python-SDK page says 18 characters
# (CONFLICT, reference/openai_azure.md §5.3): we check the documented 40.
_SUFFIX = re.compile(r"[A-Za-z0-9_-]+")
_DEPLOYMENT_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
# Checkpoint ids deploy by id: MS Learn's deploy page shows `ftchkpt-...`, the REST spec's
# checkpoints example (2025-04-01-preview) `ftckpt_...`.
_CHECKPOINT_IDS = ("ftchkpt-", "ftckpt_")
_CLASSIC_SPEC = "Azure OpenAI 2025-04-01-preview spec and the Azure RFT docs"
_V1_SPEC = "Azure OpenAI v1 spec and the Azure RFT docs"


def _hint(status: int, code: str | None, param: str | None) -> str | None:
    if code and "apiversion" in code.lower():
        return 'Set [azure] api_version to one the resource supports, or api = "v1"'
    if status == 401:
        return (
            "Check AZURE_OPENAI_API_KEY, or with Entra ID that the token's scope ([azure] "
            "entra_scope) fits the endpoint"
        )
    if status == 403:
        return (
            "The identity lacks a role on the resource (training needs 'Foundry User', formerly "
            "'Azure AI User'; deploying needs 'Foundry Owner'), or the resource's network rules "
            "refuse this client"
        )
    return None


def _graders_hint(status: int, code: str | None, param: str | None) -> str | None:
    if status == 404:
        return (
            'The alpha graders endpoints are documented on the v1 API: set [azure] api = "v1" '
            "(reference: Azure OpenAI API lifecycle, v1)"
        )
    return None


class AzureProvider(OpenAICompatProvider):
    """Azure OpenAI / Foundry reinforcement fine-tuning.

    Args:
        settings: ``AzureSettings`` (endpoint from ``AZURE_OPENAI_ENDPOINT``, key from
            ``AZURE_OPENAI_API_KEY``).
        transport: An ``httpx`` transport instead of the network, for the data plane and ARM.
        sleep: How to wait between retries and file polls.
        credential: An ``azure.identity.aio`` credential for Entra ID (default
            ``DefaultAzureCredential``, created on first use).

    Raises:
        ConfigurationError: No endpoint, or ``auth = "api_key"`` without a key.
    """

    name: ClassVar[str] = "azure"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        deploy_checkpoint=True,
        list_jobs=True,
        download_results=True,
        validate_grader=True,
        run_grader=True,
        generate=True,  # chat completions on a deployment, for `rlft preflight`
        requires_validation_set=True,  # "a validation file is required" [AZ-RFT-INC]
        poll_interval=20.0,
    )

    def __init__(
        self,
        *,
        settings: AzureSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        credential: AsyncTokenCredential | None = None,
    ) -> None:
        if not settings.endpoint:
            raise ConfigurationError(
                "provider 'azure' needs the resource endpoint: set AZURE_OPENAI_ENDPOINT, or "
                'endpoint = "https://<resource>.openai.azure.com" under [azure] in rlft.toml'
            )
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        mode = settings.auth if settings.auth != "auto" else ("api_key" if key else "entra")
        if mode == "api_key" and not key:
            raise ConfigurationError(
                "provider 'azure' is set to auth = 'api_key' but AZURE_OPENAI_API_KEY is not set; "
                "set it, or use auth = 'entra' (az login / managed identity)"
            )
        self.auth_mode = mode
        self._credentials = CredentialSource(credential)
        self._transport = transport
        self._arm: OpenAICompatClient | None = None

        if mode == "entra":
            token = EntraToken(
                provider=self.name, scope=settings.entra_scope, source=self._credentials
            )
            auth = token.headers
        else:

            async def auth() -> dict[str, str]:
                return {"api-key": key}

        v1 = settings.api == "v1"
        client = OpenAICompatClient(
            provider=self.name,
            base_url=f"{settings.endpoint}/openai" + ("/v1" if v1 else ""),
            auth=auth,
            query={} if v1 else {"api-version": settings.api_version},
            transport=transport,
            timeout=settings.timeout,
            retry=RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            secrets=[key],
            hints=[_hint],
        )
        metadata = settings.send_metadata if settings.send_metadata is not None else v1
        self.dialect = Dialect(
            provider=self.name,
            suffix_max=40,
            suffix_pattern=_SUFFIX,
            suffix_rule="1 to 40 characters of a-z, A-Z, 0-9, - and _",
            send_metadata=metadata,
            # Neither Azure spec lists a metadata filter on GET /fine_tuning/jobs.
            metadata_filter=False,
            suffix_tag=not metadata,
            body_options=frozenset({"integrations", "trainingType"}),
            # The Azure RFT docs list low, medium and high; "default" means: send nothing.
            reasoning_efforts=("low", "medium", "high"),
            drop_values={"reasoning_effort": frozenset({"default"})},
            body_enums={"trainingType": (TRAINING_TYPES, TRAINING_TYPES_SOURCE)},
            spec=_V1_SPEC if v1 else _CLASSIC_SPEC,
        )
        super().__init__(
            settings=settings,
            client=client,
            sleep=sleep,
            file_poll_interval=settings.file_poll_interval,
            file_processing_timeout=settings.file_processing_timeout,
        )
        self._settings = settings

    def _body_defaults(self) -> dict[str, Any]:
        # Microsoft's RFT sample: "Recommended approach to set trainingType. Omitting this field
        # may lead to unsupported behavior." (reference/openai_azure.md §5.4)
        training_type = self._settings.training_type
        return {"trainingType": training_type} if training_type else {}

    def _chat_path(self, model: str) -> str:
        # Classic serves chat per deployment; v1 takes the deployment name as `model`.
        if self._settings.api == "v1":
            return "/chat/completions"
        return f"/deployments/{segment(model, 'deployment')}/chat/completions"

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample ``[azure] preflight_deployment`` (default: a deployment named like ``model``)."""
        deployment = self._settings.preflight_deployment or model
        return await super().generate(model=deployment, prompts=prompts, max_tokens=max_tokens)

    def _grader_hints(self) -> list[ErrorHint]:
        return [] if self._settings.api == "v1" else [_graders_hint]

    def _create_hints(self, spec: JobSpec) -> list[ErrorHint]:
        model = spec.model

        def hint(status: int, code: str | None, param: str | None) -> str | None:
            if status == 404 or param == "model" or code in ("model_not_found", "modelNotFound"):
                return (
                    f"Model {model!r} is not available for reinforcement fine-tuning on this "
                    f"resource: it may be retired, not offered in the resource's region, or "
                    f"limited to existing customers; check the Foundry model list"
                )
            if status == 403:
                return (
                    "Azure refused to create the job: the platform or model is unavailable to "
                    "this identity or subscription (RFT needs the 'Foundry User' role; some RFT "
                    "models are open to existing customers only)"
                )
            return None

        return [hint]

    # --- deployment through Azure Resource Manager --------------------------------------------

    def _arm_client(self) -> OpenAICompatClient:
        if self._arm is None:
            settings = self._settings
            token = EntraToken(
                provider=self.name, scope=settings.arm_scope, source=self._credentials
            )
            self._arm = OpenAICompatClient(
                provider=self.name,
                base_url=settings.arm_endpoint,
                auth=token.headers,
                query={"api-version": settings.arm_api_version},
                transport=self._transport,
                timeout=settings.timeout,
                retry=RetryPolicy(max_retries=settings.max_retries),
                sleep=self._sleep,
                hints=[_hint],
            )
        return self._arm

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Create (or update) a deployment of ``checkpoint`` through Azure Resource Manager.

        ``PUT {arm}/subscriptions/{sub}/resourceGroups/{rg}/providers/
        Microsoft.CognitiveServices/accounts/{account}/deployments/{name}`` with
        ``{"sku": {...}, "properties": {"model": {"format": "OpenAI", "name", "version": "1"}}}``
        (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/fine-tuning-deploy). A
        checkpoint id (``ftchkpt-...`` as MS Learn shows it, ``ftckpt_...`` as the REST spec's
        example does) is deployed by id, anything else by its model name.
        ARM answering ``Succeeded`` does not mean the deployment already serves requests.

        Args:
            checkpoint: What to deploy (a checkpoint, or the job's final model).
            name: The deployment name to call it by; ``rlft-<job>-step<N>`` by default.

        Returns:
            The deployment name: what you pass as ``model`` when calling Azure OpenAI.

        Raises:
            ConfigurationError: ``subscription_id`` or ``resource_group`` is not configured.
        """
        settings = self._settings
        missing = [
            key
            for key, value in (
                ("subscription_id", settings.subscription_id),
                ("resource_group", settings.resource_group),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"deploying on Azure goes through Azure Resource Manager and needs "
                f"{' and '.join(missing)} under [azure] in rlft.toml "
                f"(subscription_id also reads AZURE_SUBSCRIPTION_ID)"
            )
        host = urlparse(str(settings.endpoint)).hostname or ""
        account = settings.account_name or host.split(".")[0]
        deployment = (
            name
            or _DEPLOYMENT_CHARS.sub("-", f"rlft-{checkpoint.job_id}-step{checkpoint.step or 0}")[
                :64
            ]
        )
        model = checkpoint.id if checkpoint.id.startswith(_CHECKPOINT_IDS) else checkpoint.model
        path = (
            f"/subscriptions/{segment(settings.subscription_id or '', 'subscription id')}"
            f"/resourceGroups/{segment(settings.resource_group or '', 'resource group')}"
            f"/providers/Microsoft.CognitiveServices/accounts/{segment(account, 'account name')}"
            f"/deployments/{segment(deployment, 'deployment name')}"
        )
        body = {
            "sku": {"name": settings.deployment_sku, "capacity": settings.deployment_capacity},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        }
        answer = await self._arm_client().request("PUT", path, json=body)
        properties = answer.get("properties") if isinstance(answer, dict) else None
        state = properties.get("provisioningState") if isinstance(properties, dict) else None
        log.info("azure: deployment %s of %s is %s", deployment, model, state or "submitted")
        return deployment

    async def aclose(self) -> None:
        """Close the data-plane and ARM connections and the Entra credential. Idempotent."""
        await super().aclose()
        if self._arm is not None:
            await self._arm.aclose()
        await self._credentials.aclose()
