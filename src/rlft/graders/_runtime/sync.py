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

import anyio
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


def _discard(portal: BlockingPortal) -> None:
    global _portal, _manager
    with _lock:
        if _portal is portal:
            manager, _manager, _portal = _manager, None, None
        else:
            manager = None
    if manager is not None:
        with contextlib.suppress(BaseException):  # it is already dead; just release it
            manager.__exit__(None, None, None)


async def _guarded(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> tuple[bool, Any]:
    # A BaseException (SystemExit, KeyboardInterrupt) escaping into the portal's task group
    # would stop the shared loop; hand it back to the caller's thread as a value instead.
    try:
        return True, await fn(*args)
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
        return False, exc


def run_sync(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await fn(*args)`` on the shared event loop and return its result.

    A ``BaseException`` from ``fn`` (``SystemExit``, ``KeyboardInterrupt``) is re-raised here,
    in the caller's thread, and the shared loop keeps running; should the loop ever die anyway,
    the next call starts a fresh one. A long-lived process (a warm Lambda container, a training
    worker) is never left with a dead portal ("This portal is not running").

    Raises:
        RuntimeError: Called from the shared loop's own thread (that would deadlock).
    """
    for attempt in range(2):
        portal = _get_portal()
        try:
            ok, value = portal.call(_guarded, fn, args)
        except RuntimeError as exc:
            if attempt or "portal is not running" not in str(exc):
                raise
            _discard(portal)
            continue
        if not ok:
            raise value
        result: T = value
        return result
    raise AssertionError("unreachable")  # pragma: no cover
