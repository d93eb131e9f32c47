"""The worker side of the folder protocol: run one job folder and record how it ended.

A backend's worker module is ``python -m <module> <job folder>``; its ``main`` is usually::

    def main(argv: list[str] | None = None) -> int:
        return run_worker(run, argv, provider="mine", module=__spec__.name)

where ``run(folder)`` trains and returns ``(outcome, last step)``, raising ``WorkerFailure``
for failures it can explain. Standard library and pydantic only: no torch.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlft.workers.jobdir import JobDir, utcnow

__all__ = ["ENDED", "WorkerFailure", "record_outcome", "run_worker"]

ENDED = ("succeeded", "failed", "cancelled")
"""Statuses after which nothing is recorded again."""

Outcome = tuple[str, int | None]
Finish = Callable[[JobDir, str, int | None, dict[str, str] | None], None]


class WorkerFailure(Exception):
    """A failure the worker can explain: ``code`` and a message that names the fix."""

    def __init__(self, message: str, *, code: str, step: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.step = step


def record_outcome(
    folder: JobDir, outcome: str, step: int | None = None, error: dict[str, str] | None = None
) -> None:
    """Record how the run ended: the status event first, then ``state.json``.

    A reader that sees the final status and reads the log once more (as ``Job.events()`` does)
    then finds every event. Nothing is recorded when the job already ended (the provider
    recorded a cancel that could not wait for the worker).
    """
    if folder.read_state().status in ENDED:
        return
    message = outcome if error is None else f"{outcome}: {error['message']}"
    folder.append_event(
        kind="status",
        level="error" if outcome == "failed" else "info",
        message=message,
        raw={"status": outcome, "step": step},
    )
    if outcome == "paused":
        folder.clear_request()
    changes: dict[str, Any] = {"status": outcome, "error": error}
    if outcome in ENDED:
        changes["finished_at"] = utcnow()
    if step is not None:
        changes["step"] = step
    folder.update_state(**changes)


def run_worker(
    run: Callable[[JobDir], Outcome],
    argv: list[str] | None = None,
    *,
    provider: str,
    module: str,
    finish: Finish = record_outcome,
) -> int:
    """Run one job folder with ``run`` and record the outcome with ``finish``.

    Returns 0 when the outcome was recorded, 1 on a failure (recorded too, with a traceback in
    the worker log for one ``run`` could not explain), 2 on bad arguments.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} <job folder>", file=sys.stderr)
        return 2
    folder = JobDir(Path(args[0]), provider=provider)
    try:
        outcome, step = run(folder)
    except WorkerFailure as exc:
        finish(folder, "failed", exc.step, {"message": str(exc), "code": exc.code})
        return 1
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc} (traceback in {folder.log_file})"
        finish(folder, "failed", None, {"message": message, "code": "worker_error"})
        return 1
    finish(folder, outcome, step, None)
    return 0
