"""The GRPO arithmetic of the worker, pure so it is tested without a server.

Group-relative advantages follow tinker-cookbook 0.6's RL loop (``recipes/rl_loop.py``): each
completion's reward minus its group's mean, and a group whose rewards are all equal teaches
nothing and is left out. ``std`` also divides by the group's standard deviation (GRPO as
DeepSeek wrote it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["batch_rows", "group_advantages", "mean", "std"]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    centre = mean(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / len(values))


def group_advantages(rewards: Sequence[float], *, normalise: str = "mean") -> list[float] | None:
    """Each reward's advantage within its group, or ``None`` when the group is uniform.

    Args:
        rewards: The rewards of one prompt's completions.
        normalise: ``"mean"`` (reward - mean) or ``"std"`` ((reward - mean) / std).
    """
    centre = mean(rewards)
    advantages = [r - centre for r in rewards]
    if all(abs(a) < 1e-12 for a in advantages):
        return None
    if normalise == "std":
        spread = std(rewards)
        advantages = [a / (spread + 1e-6) for a in advantages]
    return advantages


def batch_rows(step: int, *, rows: int, batch_size: int, seed: int) -> list[int]:
    """The training-row indices of ``step`` (0-based): a seeded shuffle per epoch.

    A function of the step alone, so a resumed worker draws exactly the batches the first run
    would have drawn.
    """
    if rows <= 0:
        return []
    picked: list[int] = []
    position = step * batch_size
    while len(picked) < batch_size:
        epoch, offset = divmod(position, rows)
        order = list(range(rows))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        take = order[offset : offset + batch_size - len(picked)]
        picked.extend(take)
        position += len(take)
    return picked
