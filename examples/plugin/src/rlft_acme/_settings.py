"""Settings of the ``acme`` provider: ``[acme]`` in ``rlft.toml``, ``ACME_*`` env vars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from rlft.provider import ProviderSettings

__all__ = ["AcmeSettings"]


class AcmeSettings(ProviderSettings):
    """How to reach an Acme Fine-Tuning deployment.

    ``base_url`` may sit in ``rlft.toml`` under ``[acme]``; the key comes only from
    ``ACME_API_KEY`` (rlft refuses a secret written in a file). Any field can also be set with
    ``RLFT_ACME_<FIELD>`` or passed as ``rlft.Client(settings={...})``.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {
        "api_key": "ACME_API_KEY",
        "base_url": "ACME_BASE_URL",
    }

    base_url: str
    """The API root, ending in the version: ``https://ft.acme.example/v1``."""
    api_key: SecretStr | None = None
    """The API key (``ACME_API_KEY``), sent as a bearer token."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds per HTTP attempt."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a failed call; the wire layer decides which calls are safe to retry."""
    file_poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between checks while an uploaded file is processed."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                f"must start with https:// (got {value!r}), e.g. https://ft.acme.example/v1"
            )
        return value.rstrip("/")
