"""Sampled completions -> ``tinker.Datum``s for the ``importance_sampling`` loss.

The layout of tinker-cookbook 0.6 (``recipes/rl_loop.py``): the model reads every token but the
last, the targets are every token but the first, and ``logprobs`` (the sampler's) and
``advantages`` are zero over the prompt, so only the completion's tokens carry the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["rl_datum"]


def rl_datum(
    prompt: Sequence[int], completion: Sequence[int], logprobs: Sequence[float], advantage: float
) -> Any:
    """One ``tinker.Datum``: prompt + completion, with per-token targets, logprobs, advantages.

    Raises:
        ValueError: ``logprobs`` and ``completion`` differ in length, or the completion is empty.
    """
    import numpy as np
    import tinker

    if not completion:
        raise ValueError("an empty completion carries no loss")
    if len(logprobs) != len(completion):
        raise ValueError(f"{len(completion)} sampled tokens but {len(logprobs)} logprobs")
    tokens = [int(t) for t in (*prompt, *completion)]
    observed = len(prompt) - 1  # target positions that predict prompt tokens
    inputs, targets = tokens[:-1], tokens[1:]
    old = [0.0] * observed + [float(x) for x in logprobs]
    advantages = [0.0] * observed + [float(advantage)] * len(completion)
    return tinker.Datum(
        model_input=tinker.ModelInput.from_ints(tokens=inputs),
        loss_fn_inputs={
            "target_tokens": tinker.TensorData.from_numpy(np.asarray(targets, dtype=np.int64)),
            "logprobs": tinker.TensorData.from_numpy(np.asarray(old, dtype=np.float32)),
            "advantages": tinker.TensorData.from_numpy(np.asarray(advantages, dtype=np.float32)),
        },
    )
