"""``LocalJobFile``: the local runner's ``job.json``, the generic job file plus its TRL plan."""

from __future__ import annotations

from pydantic import ConfigDict, JsonValue

from rlft.workers import JobFile

__all__ = ["LocalJobFile"]


class LocalJobFile(JobFile):
    """Everything the local worker needs, resolved by the provider before launch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grpo: dict[str, JsonValue]
    """``GRPOConfig`` keyword arguments, minus what only the worker can decide (the device)."""
    tiny: bool
    """Build the tiny demonstration model from the dataset instead of loading ``model``."""
    lora: dict[str, JsonValue] | None = None
    """``peft.LoraConfig`` keyword arguments, or ``None`` for full fine-tuning."""
    device: str = "auto"
    torch_threads: int | None = None
    offline: bool = True
