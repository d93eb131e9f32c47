"""The ``acme`` provider: Acme Fine-Tuning, a service that speaks OpenAI's fine-tuning API.

Everything OpenAI-shaped (uploads, the create body, idempotent creates, events, checkpoints,
retries, error mapping) comes from ``rlft.openai_compat``. This module only says where the
service is, how to authenticate, and where it differs from OpenAI.
"""

from __future__ import annotations

from typing import ClassVar

import httpx
from rlft.exceptions import ConfigurationError
from rlft.openai_compat import (
    Dialect,
    OpenAICompatClient,
    OpenAICompatProvider,
    RetryPolicy,
    Sleep,
)
from rlft.provider import Capabilities, Provider

from rlft_acme._settings import AcmeSettings

__all__ = ["AcmeProvider"]


class AcmeProvider(OpenAICompatProvider):
    """Acme Fine-Tuning, at ``settings.base_url``.

    Args:
        settings: ``AcmeSettings``; the key comes from ``ACME_API_KEY``.
        transport: An ``httpx`` transport to use instead of the network (tests).
        sleep: How to wait between retries and file polls (tests pass one that returns at once).

    Raises:
        ConfigurationError: No API key is configured.
    """

    # The id users write (`provider = "acme"`); it is stored with every job: never rename it.
    name: ClassVar[str] = "acme"
    # Declare only what the service really does: rlft checks these before calling anything.
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=False,
        resume_job=False,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        list_jobs=True,
        download_results=True,  # a finished job's result files (step metrics)
        poll_interval=15.0,
    )
    # Its status words are declared with the plugin (_facts.STATUSES), under the id "acme".
    # Where Acme's create request differs from OpenAI's; checked before anything is uploaded.
    dialect = Dialect(
        provider="acme",
        suffix_max=40,
        suffix_rule="1 to 40 characters",
        requires_validation=False,
        max_train_examples=10_000,
    )

    def __init__(
        self,
        *,
        settings: AcmeSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if not key:
            raise ConfigurationError(
                "provider 'acme' needs an API key: set the ACME_API_KEY environment variable"
            )

        async def auth() -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        client = OpenAICompatClient(
            provider=self.name,
            base_url=settings.base_url,
            auth=auth,
            transport=transport,
            timeout=settings.timeout,
            retry=RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            secrets=[key],  # masked in every error message
        )
        super().__init__(
            settings=settings,
            client=client,
            sleep=sleep,
            file_poll_interval=settings.file_poll_interval,
        )

    # Acme has no pause, resume or grader endpoints. Fall back to the contract's defaults, which
    # raise CapabilityError, rather than call routes that would answer 404.
    pause_job = Provider.pause_job
    resume_job = Provider.resume_job
    validate_grader = Provider.validate_grader
    run_grader = Provider.run_grader
