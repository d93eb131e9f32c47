"""The lock that tells a live worker from a dead one, and folder failures as rlft errors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rlft.exceptions import NotFoundError, ProviderError, RLFTError

if TYPE_CHECKING:
    from rlft.workers.jobdir import JobDir

__all__ = ["LockHeld", "hold_lock", "is_alive", "job_not_found", "map_folder_errors"]


class LockHeld(Exception):
    """The job's lock is held: a worker or launcher of it is alive."""


def job_not_found(job_id: str, *, provider: str) -> NotFoundError:
    return NotFoundError(
        f"no {provider} job {job_id!r} (`rlft jobs list` shows the jobs in this rlft home)",
        provider=provider,
        code="job_not_found",
    )


@contextmanager
def map_folder_errors(provider: str) -> Iterator[None]:
    """The one boundary where file-system and process errors become ``ProviderError``."""
    try:
        yield
    except RLFTError:
        raise
    except OSError as exc:
        raise ProviderError(f"{provider} job store: {exc}", provider=provider) from exc


@contextmanager
def hold_lock(folder: JobDir, *, wait: float = 0.2) -> Iterator[int]:
    """Take the job's lock and yield its file descriptor, to hand to a launched process.

    The child inherits the open file (and so the lock); closing our copy on exit leaves the
    lock with the child until it and its worker exit.

    Args:
        folder: The job folder.
        wait: Seconds to wait for a holder to let go (``is_alive()`` elsewhere holds it for a
            moment; a worker that recorded its end may still be exiting) before ``LockHeld``.
    """
    import fcntl

    fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(str(folder.lock_file)) from None
                time.sleep(0.01)
        yield fd
    finally:
        os.close(fd)


def is_alive(folder: JobDir) -> bool:
    """True while the job's launcher or worker holds its lock (immune to recycled pids)."""
    import fcntl

    try:
        fd = os.open(folder.lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
