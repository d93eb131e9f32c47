"""TinkerSettings: the ``[tinker]`` section of ``rlft.toml``. Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr

from rlft.workers import WorkerSettings

__all__ = ["TinkerSettings"]


class TinkerSettings(WorkerSettings):
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
    stop_timeout: float = Field(default=60.0, gt=0)
    """Seconds ``cancel`` waits for the worker to stop at a step boundary before killing it, and
    ``pause`` waits for the saved state before returning ``pausing`` (a step on a remote service
    takes longer than a local one). ``home`` and ``python`` are as for every worker backend."""
    connect_timeout: float = Field(default=30.0, gt=0)
    """Seconds ``create_job`` waits for the service to list its models before giving up with
    an error naming ``base_url`` (the SDK would keep retrying for five minutes)."""
    step_retries: int = Field(default=3, ge=0, le=20)
    """Times sampling or evaluation that lost its connection is tried again (after the SDK's own
    five minutes of retries), with exponential backoff, before the job fails with
    ``connection_lost``. An update (``forward_backward``/``optim_step``) is never re-sent by
    rlft: the SDK repeats it under its sequence id, which the service applies once."""
    retry_backoff: float = Field(default=2.0, gt=0)
    """Seconds before the first retry of a step; doubled for each further one."""
