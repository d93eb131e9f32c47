"""Neutral hyperparameters -> the worker's plan, range-checked before anything leaves the machine.

Pure and light (pydantic only): the provider calls it in ``check_spec`` and again when it
writes the job folder; the worker reads the plan back from there.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from rlft.exceptions import HyperparameterError
from rlft.provider import Hyperparameters

__all__ = ["PROVIDER", "TinkerPlan", "plan_training"]

PROVIDER = "tinker"
# The SDK's create_lora_training_client(rank=32) default; the cookbook's RL loop uses it too.
DEFAULT_RANK = 32
DEFAULT_LEARNING_RATE = 4e-5  # tinker-cookbook's rl_loop default for an 8B model
ADAM_FIELDS = ("beta1", "beta2", "eps", "weight_decay", "grad_clip_norm")
OPTIONS = (
    "lora_rank",
    "temperature",
    "save_every",
    "advantage",
    "adam",
    "grader_guard",
    "train_mlp",
    "train_attn",
    "train_unembed",
)


class TinkerPlan(BaseModel):
    """What the worker runs: every value resolved, so a resumed worker runs the same loop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total_steps: int
    batch_size: int
    group_size: int
    learning_rate: float
    adam: dict[str, float]
    lora_rank: int
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    max_tokens: int
    temperature: float
    eval_interval: int | None
    """Steps between validation passes (``None``: no validation set)."""
    eval_samples: int
    save_every: int
    """Steps between saved checkpoints (sampler weights and the resumable state)."""
    seed: int
    advantage: Literal["mean", "std"]
    """``mean``: reward minus the group's mean (tinker-cookbook); ``std``: also divided by the
    group's standard deviation (DeepSeek's GRPO)."""
    grader_guard: dict[str, float] | None
    reasons: list[str]
    """The settings rlft chose because the spec left them unset, in words."""

    def summary(self) -> str:
        """One line for ``rlft run``: the settings a user did not choose."""
        return "tinker chose: " + "; ".join(self.reasons) if self.reasons else ""


def _error(name: str, value: Any, allowed: str) -> HyperparameterError:
    return HyperparameterError(provider=PROVIDER, name=name, value=value, allowed=allowed)


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _error(name, value, f"an integer from {low} to {high}")
    return value


def _float(name: str, value: Any, low: float, high: float, *, open_low: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (low < value if open_low else low <= value) and value <= high
    if not ok:
        bound = f"greater than {low:g}" if open_low else f"at least {low:g}"
        raise _error(name, value, f"a number {bound} and at most {high:g}")
    return float(value)


def plan_training(hp: Hyperparameters, *, train_rows: int, has_validation: bool) -> TinkerPlan:
    """Map and range-check the neutral hyperparameters; fill the defaults, saying which.

    Raises:
        HyperparameterError: A value is out of range, unsupported on this backend, or an
            unknown ``provider_options`` key.
    """
    for name in ("learning_rate_multiplier", "reasoning_effort", "compute_multiplier"):
        if getattr(hp, name) is not None:
            raise _error(
                name,
                getattr(hp, name),
                "unset: the Tinker backend runs its own loop (use learning_rate for Adam)",
            )
    options = dict(hp.provider_options)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise _error(
            f"provider_options.{unknown[0]}", options[unknown[0]], f"one of {', '.join(OPTIONS)}"
        )
    reasons: list[str] = []

    batch_size = _int("batch_size", hp.batch_size or min(8, max(train_rows, 1)), 1, 1024)
    if hp.batch_size is None:
        reasons.append(f"batch_size={batch_size}")
    if hp.max_steps is not None:
        if hp.epochs is not None:
            raise _error("epochs", hp.epochs, "unset when max_steps is set (give one of them)")
        total = _int("max_steps", hp.max_steps, 1, 1_000_000)
    else:
        epochs = _int("epochs", hp.epochs or 1, 1, 100)
        total = max(1, math.ceil(train_rows / batch_size)) * epochs
        if hp.epochs is None:
            reasons.append(f"epochs=1 ({total} steps)")
    group = _int("samples_per_prompt", hp.samples_per_prompt or 8, 2, 256)
    if hp.samples_per_prompt is None:
        reasons.append(f"samples_per_prompt={group}")
    lr = _float("learning_rate", hp.learning_rate or DEFAULT_LEARNING_RATE, 0.0, 0.1)
    if hp.learning_rate is None:
        reasons.append(f"learning_rate={lr:g}")
    max_tokens = _int("max_completion_tokens", hp.max_completion_tokens or 256, 1, 32768)
    if hp.max_completion_tokens is None:
        reasons.append(f"max_completion_tokens={max_tokens}")

    eval_interval: int | None = None
    if hp.eval_interval is not None:
        eval_interval = _int("eval_interval", hp.eval_interval, 1, 1_000_000)
    if not has_validation:
        eval_interval = None  # nothing to evaluate on; the checkpoints still follow save_every
    elif eval_interval is None:
        eval_interval = max(1, total // 4)
        reasons.append(f"eval_interval={eval_interval}")
    eval_samples = _int("eval_samples", hp.eval_samples or 1, 1, 64)

    rank = _int("provider_options.lora_rank", options.get("lora_rank", DEFAULT_RANK), 1, 512)
    temperature = _float("provider_options.temperature", options.get("temperature", 1.0), 0.0, 2.0)
    save_default = eval_interval or max(1, total // 4)
    save_every = _int(
        "provider_options.save_every", options.get("save_every", save_default), 1, 1_000_000
    )
    advantage = options.get("advantage", "mean")
    if advantage not in ("mean", "std"):
        raise _error("provider_options.advantage", advantage, '"mean" or "std"')
    adam = _adam(options.get("adam", {}))
    guard = _guard(options.get("grader_guard", {"threshold": 0.5, "steps": 3}))
    flags = {}
    for name in ("train_mlp", "train_attn", "train_unembed"):
        value = options.get(name, True)
        if not isinstance(value, bool):
            raise _error(f"provider_options.{name}", value, "true or false")
        flags[name] = value
    seed = hp.seed if hp.seed is not None else 0
    return TinkerPlan(
        total_steps=total,
        batch_size=batch_size,
        group_size=group,
        learning_rate=lr,
        adam=adam,
        lora_rank=rank,
        max_tokens=max_tokens,
        temperature=temperature,
        eval_interval=eval_interval,
        eval_samples=eval_samples,
        save_every=save_every,
        seed=seed,
        advantage=advantage,
        grader_guard=guard,
        reasons=reasons,
        **flags,
    )


def _adam(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _error("provider_options.adam", value, f"a table of {', '.join(ADAM_FIELDS)}")
    adam: dict[str, float] = {}
    for key, number in value.items():
        if key not in ADAM_FIELDS:
            raise _error(f"provider_options.adam.{key}", number, f"one of {', '.join(ADAM_FIELDS)}")
        high = 1.0 if key in ("beta1", "beta2", "eps", "weight_decay") else 1e6
        adam[key] = _float(f"provider_options.adam.{key}", number, 0.0, high, open_low=False)
    return adam


def _guard(value: Any) -> dict[str, float] | None:
    if value is None or value is False:
        return None
    if not isinstance(value, dict) or set(value) - {"threshold", "steps"}:
        raise _error(
            "provider_options.grader_guard", value, "false, or a table of threshold and steps"
        )
    threshold = _float(
        "provider_options.grader_guard.threshold", value.get("threshold", 0.5), 0.0, 1.0
    )
    steps = _int("provider_options.grader_guard.steps", value.get("steps", 3), 1, 1000)
    return {"threshold": threshold, "steps": float(steps)}
