"""``job.json`` and ``progress.json``: the Tinker part of a job folder.

``job.json`` (written once by the provider) holds what the worker runs; ``progress.json``
(replaced atomically by the worker) records how far training got on the service: the last step
whose update was committed, the saved state to resume from, and an update in flight. Light:
pydantic only, read by the provider too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rlft.workers import JobFile
from rlft_providers.tinker._plan import TinkerPlan

__all__ = [
    "PROGRESS",
    "Progress",
    "SavedState",
    "TinkerJobFile",
    "read_progress",
    "write_progress",
]

PROGRESS = "progress.json"


class TinkerJobFile(JobFile):
    """``job.json`` of a Tinker job: the generic fields plus the service and the loop's plan.

    The API key is not here: it reaches the worker through its environment only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    tokenizer: str | None = None
    plan: TinkerPlan
    step_retries: int = 3
    retry_backoff: float = 2.0


class SavedState(BaseModel):
    """A checkpoint on the service: sampler weights (for ``generate``) and the full state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int
    state_path: str
    """``save_state``: weights and optimizer, what a resumed worker loads."""
    sampler_path: str | None = None
    """``save_weights_for_sampler``: what ``generate`` and a ``Checkpoint``'s model name."""


class Progress(BaseModel):
    """How far training got. ``step`` counts committed updates (one optimizer step each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int = 0
    optimizer_steps: int = 0
    """Optimizer steps the service has applied for this job, as far as the worker knows."""
    in_flight: int | None = None
    """A step whose update was sent and not yet confirmed (``None``: none)."""
    saved: SavedState | None = None
    """The latest saved state (the resume point)."""
    history: list[SavedState] = Field(default_factory=list)


def read_progress(root: Path) -> Progress:
    path = root / PROGRESS
    if not path.is_file():
        return Progress()
    return Progress.model_validate_json(path.read_bytes())


def write_progress(root: Path, progress: Progress) -> None:
    path = root / PROGRESS
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(2)}.tmp")
    tmp.write_text(progress.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
