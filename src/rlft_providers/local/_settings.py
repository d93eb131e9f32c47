"""LocalSettings: the ``[local]`` section of ``rlft.toml``. Imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from rlft.workers import WorkerSettings

__all__ = ["LocalSettings"]

Device = Literal["auto", "cpu", "cuda", "mps"]


class LocalSettings(WorkerSettings):
    """Settings of the local TRL runner.

    Example ``rlft.toml``::

        provider = "local"
        [local]
        device = "cpu"
        stop_timeout = 60
    """

    # home, python (it needs rlft[local] installed) and stop_timeout: see WorkerSettings.
    device: Device = "auto"
    """``auto`` picks CUDA, then MPS, then the CPU. On the CPU the runner turns bf16 and gradient
    checkpointing off (both make small models slower there)."""
    torch_threads: int | None = Field(default=None, ge=1)
    """``torch.set_num_threads`` in the worker. ``None``: one thread for the tiny model (its
    matrices are too small to gain from more, and OpenMP threads spinning on a busy CPU slowed it
    5-10x in our measurements), torch's choice (every core) for a named model."""
    offline: bool = True
    """Set ``HF_HUB_OFFLINE=1`` in workers: models load from local folders or the Hugging Face
    cache only, never the network. Set ``false`` to let a worker download a named model."""

    def resolved_home(self) -> Path:
        """The home folder, resolved now (reads ``RLFT_HOME``)."""
        if self.home is not None:
            return self.home.expanduser()
        from rlft.provider import rlft_home

        return rlft_home() / "local"
