from __future__ import annotations

import anyio
import pytest

from rlft._concurrency import map_concurrently
from rlft.exceptions import NotFoundError

pytestmark = pytest.mark.anyio


async def test_results_keep_input_order_and_respect_the_limit() -> None:
    running = peak = 0

    async def slow_double(value: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01 * (5 - value % 5))  # later items finish first
        running -= 1
        return value * 2

    assert await map_concurrently(slow_double, list(range(10)), limit=3) == [
        v * 2 for v in range(10)
    ]
    assert peak == 3


async def test_the_first_error_is_raised_unwrapped_and_cancels_the_rest() -> None:
    finished: list[int] = []

    async def call(value: int) -> int:
        if value == 0:
            raise NotFoundError("no such model", provider="fake", status_code=404)
        await anyio.sleep(1)
        finished.append(value)
        return value

    with pytest.raises(NotFoundError, match="no such model"):
        await map_concurrently(call, [0, 1, 2], limit=3)
    assert finished == []
