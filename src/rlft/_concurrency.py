"""Small structured-concurrency helpers shared by the core and the built-in providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

__all__ = ["map_concurrently"]

T = TypeVar("T")
R = TypeVar("R")


async def map_concurrently(
    fn: Callable[[T], Awaitable[R]], items: Sequence[T], *, limit: int = 4
) -> list[R]:
    """``[await fn(item) for item in items]``, at most ``limit`` at a time, results in order.

    The first exception cancels the other calls and is raised as itself, not wrapped in an
    ``ExceptionGroup``, so callers catch ``rlft.exceptions`` types as usual.
    """
    results: list[R | None] = [None] * len(items)
    failures: list[Exception] = []
    limiter = anyio.CapacityLimiter(limit)

    async def run(index: int, item: T) -> None:
        try:
            async with limiter:
                results[index] = await fn(item)
        except Exception as exc:  # re-raised below, unwrapped
            failures.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for index, item in enumerate(items):
            group.start_soon(run, index, item)
    if failures:
        raise failures[0]
    return results  # type: ignore[return-value]  # every slot is filled when nothing failed
