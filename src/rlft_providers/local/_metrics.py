"""TRL's log dicts -> neutral ``StepMetrics``. Pure, so it is tested without training.

TRL 1.16 log keys (reference/trl_local.md §2 "Logged metrics"): ``reward``, ``reward_std``,
``rewards/<func>/mean``, ``kl`` (beta > 0 only), ``completions/mean_length``, ``step_time``,
``num_tokens``; evaluation logs carry the same names prefixed ``eval_``. The grader's reward
function (``rlft.graders.formats.trl.RewardFunction``) adds, through TRL's ``log_metric``,
``<grader>/failure_rate``, ``<grader>/errors/<kind>`` and, for a multi grader, ``<grader>/<key>``
for each sub-grader's mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rlft.provider import StepMetrics

__all__ = ["merge_validation", "step_metrics"]

_NAMED = {
    "reward": "train_reward_mean",
    "reward_std": "train_reward_std",
    "kl": "kl",
    "completions/mean_length": "completion_length_mean",
    "step_time": "step_seconds",
}
# Logged once at the end of train(): a summary, not a step.
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def step_metrics(
    logs: Mapping[str, Any], *, step: int, total_steps: int | None, grader: str
) -> StepMetrics:
    """Normalise one training log (``on_log``'s ``logs``) taken at ``step``.

    Args:
        logs: TRL's log dict.
        step: The global step.
        total_steps: The planned number of steps.
        grader: The grader's name, which prefixes its own metrics.
    """
    fields: dict[str, Any] = {"step": step, "total_steps": total_steps}
    grader_rewards: dict[str, float] = {}
    tokens: dict[str, float] = {}
    extra: dict[str, float] = {}
    own = f"{grader}/"
    for key, value in logs.items():
        number = _number(value)
        if number is None:
            continue
        if key in _NAMED:
            fields[_NAMED[key]] = number
        elif key == f"{own}failure_rate":
            fields["grader_error_rate"] = number
        elif key.startswith(f"{own}errors/"):
            extra[key] = number
            if key == f"{own}errors/sample_parse":
                fields["parse_error_rate"] = number
        elif key.startswith(own) and "/" in key.removeprefix(own):
            extra[key] = number  # e.g. a sub-grader's own counters: not a reward
        elif key.startswith(own):
            grader_rewards[key.removeprefix(own)] = number
        elif key.startswith("rewards/") and key.endswith("/mean"):
            grader_rewards.setdefault(key.removeprefix("rewards/").removesuffix("/mean"), number)
        elif key == "num_tokens":
            tokens["total"] = number
        else:
            extra[key] = number
    return StepMetrics(**fields, grader_rewards=grader_rewards, tokens=tokens, extra=extra)


def merge_validation(metrics: StepMetrics, eval_logs: Mapping[str, Any]) -> StepMetrics:
    """Add an evaluation log (``eval_*`` keys) to the step's training metrics."""
    valid = _number(eval_logs.get("eval_reward"))
    extra = dict(metrics.extra)
    for key, value in eval_logs.items():
        number = _number(value)
        if number is not None and key != "eval_reward" and key.startswith("eval_"):
            extra[key] = number
    return metrics.model_copy(update={"valid_reward_mean": valid, "extra": extra})
