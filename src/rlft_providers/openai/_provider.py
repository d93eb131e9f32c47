"""The ``openai`` provider: OpenAI's fine-tuning API with ``method.type = "reinforcement"``."""

from __future__ import annotations

from datetime import UTC, date, datetime
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
from rlft_providers.openai._lifecycle import (
    ALTERNATIVES,
    NEW_JOBS_STOP,
    O4_MINI_SHUTDOWN,
    SOURCE,
)
from rlft_providers.openai._settings import OpenAISettings

if TYPE_CHECKING:
    from rlft.provider import JobSpec

__all__ = ["OpenAIProvider"]

# OpenAI is winding down self-serve fine-tuning; a refused create names the date, the source and
# where the same job runs instead, rather than leaving users to guess (_lifecycle.py).


def _stop_words(today: date) -> str:
    verb = "stopped" if today >= NEW_JOBS_STOP else "stop"
    return f"new self-serve fine-tuning jobs {verb} on {NEW_JOBS_STOP.isoformat()}"


def lifecycle_hint(model: str | None, today: date) -> ErrorHint:
    """Advice for a refused create: OpenAI's 2027-01-06 stop, or o4-mini's retirement."""
    retired = bool(model) and str(model).startswith("o4-mini") and today >= O4_MINI_SHUTDOWN

    def hint(status: int, code: str | None, param: str | None) -> str | None:
        about_model = status == 404 or param == "model" or code == "model_not_found"
        # A 400 blaming another field (a grader, a file) is that field's error, not the platform.
        refused = about_model or status == 403 or (status == 400 and param is None)
        if retired and refused:
            return (
                f"Model {model!r} is unavailable: o4-mini, OpenAI's reinforcement fine-tuning "
                f"base model, shut down on {O4_MINI_SHUTDOWN.isoformat()}, and "
                f"{_stop_words(today)} ({SOURCE}). Run the same job on {ALTERNATIVES}"
            )
        if status == 403 or (refused and today >= NEW_JOBS_STOP):
            return (
                "OpenAI refused to create a fine-tuning job for this organisation: the "
                f"platform or model is unavailable to it. OpenAI is winding down fine-tuning: "
                f"job creation closed to new organisations in 2026, and {_stop_words(today)} "
                f"({SOURCE}). Run the same job on {ALTERNATIVES}"
            )
        if about_model:
            return (
                f"Model {model!r} is unavailable for reinforcement fine-tuning: it may have "
                f"been retired ({SOURCE}) or not be enabled for this organisation"
            )
        return None

    return hint


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
        return [lifecycle_hint(spec.model, self._today())]

    def _today(self) -> date:
        """Today in UTC (tests override it to stand before or after a lifecycle date)."""
        return datetime.now(UTC).date()
