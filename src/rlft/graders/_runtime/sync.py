"""Run the async engine from synchronous callers (TRL's reward calls, the Lambda handler).

One event loop per process runs in a daemon thread behind an anyio ``BlockingPortal``, started on
first use. Any thread may call ``run_sync``; the portal serialises nothing, so calls from several
threads run concurrently on the loop. Reusing one loop (rather than ``anyio.run`` per call)
saves a loop start per batch and keeps per-loop state, such as the sandbox pool's limiter, alive.

Part of the engine runtime copied into the Lambda package: standard library and anyio only.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ["run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_manager: AbstractContextManager[BlockingPortal] | None = None


def _get_portal() -> BlockingPortal:
    global _portal, _manager
    with _lock:
        if _portal is None:
            manager = start_blocking_portal(backend="asyncio")
            _portal = manager.__enter__()
            _manager = manager
            atexit.register(_stop)
        return _portal


def _stop() -> None:
    global _portal, _manager
    with _lock:
        manager, _manager, _portal = _manager, None, None
    if manager is not None:
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            manager.__exit__(None, None, None)


def run_sync(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await fn(*args)`` on the shared event loop and return its result.

    Raises:
        RuntimeError: Called from the shared loop's own thread (that would deadlock).
    """
    portal = _get_portal()
    return portal.call(fn, *args)
