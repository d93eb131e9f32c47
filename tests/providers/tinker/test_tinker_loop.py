"""GRPO arithmetic and the datum layout, pure (no server)."""

from __future__ import annotations

import pytest

from rlft_providers.tinker._datums import rl_datum
from rlft_providers.tinker._loop import batch_rows, group_advantages


def test_advantages_are_relative_to_the_group() -> None:
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    normalised = group_advantages([1.0, 0.0], normalise="std")
    assert normalised is not None and normalised[0] == pytest.approx(1.0, rel=1e-4)


def test_a_uniform_group_teaches_nothing() -> None:
    assert group_advantages([0.3, 0.3, 0.3]) is None


def test_batches_depend_on_the_step_alone() -> None:
    first = [batch_rows(s, rows=10, batch_size=4, seed=1) for s in range(5)]
    again = [batch_rows(s, rows=10, batch_size=4, seed=1) for s in range(5)]
    assert first == again  # a resumed worker draws the same batches
    assert sorted(first[0] + first[1] + first[2][:2]) == list(range(10))  # one epoch, each once
    assert all(len(b) == 4 for b in first)
    assert first != [batch_rows(s, rows=10, batch_size=4, seed=2) for s in range(5)]


def test_a_datum_carries_the_loss_on_the_completion_only() -> None:
    datum = rl_datum([5, 6, 7], [8, 9], [-0.2, -0.4], 0.75)
    assert datum.model_input.to_ints() == [5, 6, 7, 8]
    inputs = datum.loss_fn_inputs
    assert inputs["target_tokens"].tolist() == [6, 7, 8, 9]
    assert inputs["logprobs"].tolist() == pytest.approx([0.0, 0.0, -0.2, -0.4])
    assert inputs["advantages"].tolist() == [0.0, 0.0, 0.75, 0.75]
    with pytest.raises(ValueError, match="logprobs"):
        rl_datum([1], [2, 3], [-0.1], 1.0)


def test_a_lost_connection_is_retried_with_backoff_then_named() -> None:
    import httpx
    import tinker

    from rlft_providers.tinker._service import ConnectionLost, retrying

    request = httpx.Request("POST", "http://127.0.0.1:9/api/v1/asample")
    waits: list[float] = []
    notes: list[str] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise tinker.APIConnectionError(request=request)
        return "sampled"

    assert (
        retrying(
            flaky,
            what="sampling",
            retries=3,
            backoff=1.5,
            on_retry=notes.append,
            sleep=waits.append,
        )
        == "sampled"
    )
    assert waits == [1.5, 3.0] and "retrying in 1.5s (1/3)" in notes[0]

    def down() -> str:
        raise tinker.APIConnectionError(request=request)

    with pytest.raises(ConnectionLost, match="during step 4's sampling .* after 3 attempts"):
        retrying(down, what="step 4's sampling", retries=2, backoff=1.0, sleep=waits.append)

    def refused() -> str:  # not a connection problem: no retry
        raise ValueError("bad datum")

    with pytest.raises(ValueError):
        retrying(refused, what="x", retries=5, backoff=1.0, sleep=waits.append)
