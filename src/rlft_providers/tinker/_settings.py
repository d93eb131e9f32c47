"""TinkerSettings: the ``[tinker]`` section of ``rlft.toml``. Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from rlft.provider import ProviderSettings

__all__ = ["TinkerSettings"]


class TinkerSettings(ProviderSettings):
    """How to reach a Tinker-protocol service, and where its jobs live on this machine.

    The key comes from ``TINKER_API_KEY`` only (never from a file). ``base_url`` selects the
    service, so a Tinker-compatible one (Together, a self-hosted SkyRL ``tx``) works by
    configuration alone. Example ``rlft.toml``::

        provider = "tinker"
        [tinker]
        base_url = "http://localhost:8000"   # omit for Thinking Machines' own service
        tokenizer = "/models/Qwen3-4B"       # optional: a local tokenizer folder
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {"api_key": "TINKER_API_KEY"}

    api_key: SecretStr | None = None
    """The service's API key (``TINKER_API_KEY``). The worker gets it through its environment;
    it is never written to the job folder."""
    base_url: str | None = None
    """The service's root URL (``RLFT_TINKER_BASE_URL``); ``None`` is the SDK's default (its own
    ``TINKER_BASE_URL``, then Thinking Machines' production API)."""
    tokenizer: str | None = None
    """A local tokenizer folder (``AutoTokenizer``) that renders prompts and reads completions.
    ``None`` asks the SDK (``TrainingClient.get_tokenizer()``), which downloads the base model's
    tokenizer from the Hugging Face hub on first use."""
    home: Path | None = None
    """Where jobs and datasets live; ``None`` means ``rlft_home() / "tinker"``."""
    python: str | None = None
    """The Python that runs workers; ``None`` is the caller's own. It needs ``rlft[tinker]``."""
    stop_timeout: float = Field(default=60.0, gt=0)
    """Seconds ``cancel`` waits for the worker to stop at a step boundary before killing it, and
    ``pause`` waits for the saved state before returning ``pausing``."""
    step_retries: int = Field(default=3, ge=0, le=20)
    """Times a step that lost its connection is tried again (after the SDK's own retries), with
    exponential backoff, before the job fails with ``connection_lost``."""
    retry_backoff: float = Field(default=2.0, gt=0)
    """Seconds before the first retry of a step; doubled for each further one."""

    def resolved_home(self) -> Path:
        """The home folder, resolved now (reads ``RLFT_HOME``)."""
        if self.home is not None:
            return self.home.expanduser()
        from rlft.provider import rlft_home

        return rlft_home() / "tinker"
