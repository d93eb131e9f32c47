"""The ``openai`` provider: OpenAI's fine-tuning API with ``method.type = "reinforcement"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import httpx

from rlft.exceptions import ConfigurationError
from rlft.openai_compat import (
    Dialect,
    ErrorHint,
    OpenAICompatClient,
    OpenAICompatProvider,
    RetryPolicy,
    Sleep,
)
from rlft.provider import Capabilities
from rlft_providers.openai._settings import OpenAISettings

if TYPE_CHECKING:
    from rlft.provider import JobSpec

__all__ = ["OpenAIProvider"]

# OpenAI is winding down self-serve fine-tuning; a refused create names this page rather than
# leaving users to guess. https://developers.openai.com/api/docs/deprecations (§0 of the
# reference: creation closed to new orgs 2026-05-07, to inactive orgs 2026-07-02, to everyone
# 2027-01-06).
_DEPRECATIONS = "https://developers.openai.com/api/docs/deprecations"


def _auth_hint(status: int, code: str | None, param: str | None) -> str | None:
    if status == 401:
        return (
            "Check OPENAI_API_KEY (and OPENAI_ORG_ID / OPENAI_PROJECT_ID if the key belongs to "
            "another organisation or project)"
        )
    return None


class OpenAIProvider(OpenAICompatProvider):
    """OpenAI reinforcement fine-tuning (``https://api.openai.com/v1``, or ``base_url``).

    Args:
        settings: ``OpenAISettings``; the key comes from ``OPENAI_API_KEY``.
        transport: An ``httpx`` transport instead of the network (tests, custom proxies).
        sleep: How to wait between retries and file polls (tests inject a recorder).

    Raises:
        ConfigurationError: No API key is configured.
    """

    name: ClassVar[str] = "openai"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        list_jobs=True,
        download_results=True,
        generate=True,  # chat completions, for `rlft preflight`
        validate_grader=True,
        run_grader=True,
        # The RFT guide: "both training and validation file IDs are needed for RFT".
        requires_validation_set=True,
        poll_interval=20.0,
    )
    dialect = Dialect(provider="openai", suffix_max=64, suffix_rule="1 to 64 characters")

    def __init__(
        self,
        *,
        settings: OpenAISettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if not key:
            raise ConfigurationError(
                "provider 'openai' needs an API key: set the OPENAI_API_KEY environment variable, "
                "or pass settings={'api_key': ...} to rlft.Client"
            )
        headers = {}
        if settings.organization:
            headers["OpenAI-Organization"] = settings.organization
        if settings.project:
            headers["OpenAI-Project"] = settings.project

        async def auth() -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        client = OpenAICompatClient(
            provider=self.name,
            base_url=settings.base_url,
            auth=auth,
            headers=headers,
            transport=transport,
            timeout=settings.timeout,
            retry=RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            secrets=[key],
            hints=[_auth_hint],
        )
        super().__init__(
            settings=settings,
            client=client,
            sleep=sleep,
            file_poll_interval=settings.file_poll_interval,
            file_processing_timeout=settings.file_processing_timeout,
        )

    def _create_hints(self, spec: JobSpec) -> list[ErrorHint]:
        model = spec.model

        def closed(status: int, code: str | None, param: str | None) -> str | None:
            if status == 403:
                return (
                    "OpenAI refused to create a fine-tuning job for this organisation: the "
                    "platform or model is unavailable to it. OpenAI is winding down self-serve "
                    "fine-tuning (job creation closed to new and inactive organisations in 2026, "
                    f"to everyone on 2027-01-06; see {_DEPRECATIONS}). The same job runs on "
                    "provider 'azure', 'bedrock' or 'local'"
                )
            if status == 404 or param == "model" or code == "model_not_found":
                return (
                    f"Model {model!r} is unavailable for reinforcement fine-tuning: it may have "
                    f"been retired ({_DEPRECATIONS}) or not be enabled for this organisation"
                )
            return None

        return [closed]
