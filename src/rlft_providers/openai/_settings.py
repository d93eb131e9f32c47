"""Settings of the ``openai`` provider: ``[openai]`` in ``rlft.toml``, ``OPENAI_*`` env vars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr

from rlft.provider import ProviderSettings

__all__ = ["DEFAULT_BASE_URL", "OpenAISettings"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAISettings(ProviderSettings):
    """How to reach OpenAI (or any service that speaks its fine-tuning API).

    The key comes from ``OPENAI_API_KEY`` (never from a file). Everything else may sit in
    ``rlft.toml`` under ``[openai]`` or in ``RLFT_OPENAI_<FIELD>`` env vars.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {
        "api_key": "OPENAI_API_KEY",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
        "base_url": "OPENAI_BASE_URL",
    }

    api_key: SecretStr | None = None
    """The API key (``OPENAI_API_KEY``)."""
    organization: str | None = None
    """Sent as ``OpenAI-Organization`` when set (``OPENAI_ORG_ID``)."""
    project: str | None = None
    """Sent as ``OpenAI-Project`` when set (``OPENAI_PROJECT_ID``)."""
    base_url: str = DEFAULT_BASE_URL
    """The API root; point it at a proxy or a compatible service (``OPENAI_BASE_URL``)."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds per HTTP attempt."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a failed call (reads on 408/409/429/5xx and network errors; creates only when
    they provably never landed)."""
    file_poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between checks while an uploaded file is processed."""
    file_processing_timeout: float = Field(default=1800.0, gt=0)
    """Seconds to wait for an uploaded file to be processed."""
