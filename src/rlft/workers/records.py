"""Between a job folder's event log and the neutral models: events and checkpoints out.

Light (no torch): used by providers in the caller's process and by the launcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlft.exceptions import UsageError
from rlft.provider import Checkpoint, JobEvent, StepMetrics
from rlft.workers.jobdir import EVENT_ID_WIDTH, JobDir, checkpoint_problem

__all__ = [
    "checkpoint_path_problem",
    "checkpoints_from_events",
    "event_from_record",
    "last_checkpoint",
    "parse_cursor",
    "resume_hint",
]


def checkpoint_path_problem(path: str) -> str | None:
    """Why a checkpoint event's ``path`` can't be used (``None``: usable).

    A URI (``tinker://...``) names remote weights the service keeps: usable as recorded. A local
    path must be a complete, intact ``checkpoint-N`` folder (sealed by ``seal_checkpoint``).
    """
    if "://" in path:
        return None
    folder = Path(path)
    if not folder.is_dir():
        return "its folder is gone"
    return checkpoint_problem(folder)


def checkpoints_from_events(job_id: str, events: list[JobEvent]) -> list[Checkpoint]:
    """One ``Checkpoint`` per step from the ``checkpoint`` events (the last event of a step wins).

    Folders that no longer exist are left out; whether the rest is intact is the caller's check.
    """
    found: dict[int, Checkpoint] = {}
    for event in events:
        if event.kind != "checkpoint" or not event.raw:
            continue
        step, path = event.raw.get("step"), event.raw.get("path")
        if not isinstance(step, int) or not isinstance(path, str):
            continue
        if "://" not in path and not Path(path).is_dir():
            continue
        found[step] = Checkpoint(
            id=f"checkpoint-{step}",
            job_id=job_id,
            step=step,
            model=path,
            metrics=event.metrics or StepMetrics(step=step),
            created_at=event.at,
            raw=event.raw,
        )
    return [found[step] for step in sorted(found)]


def last_checkpoint(folder: JobDir) -> int | None:
    """The step of the newest usable checkpoint the worker recorded, or ``None``."""
    steps = []
    for _, record in folder.read_events(settled=True).events:
        raw = record.get("raw") or {}
        step, path = raw.get("step"), raw.get("path")
        if not (record.get("kind") == "checkpoint" and isinstance(path, str)):
            continue
        if isinstance(step, int) and checkpoint_path_problem(path) is None:
            steps.append(step)
    return max(steps, default=None)


def parse_cursor(after: str | None) -> int:
    """An event id (a line number) as an int; ``0`` for no cursor."""
    if after is None:
        return 0
    if not after.isdigit():
        raise UsageError(f"{after!r} is not an event id of a worker job (ids are line numbers)")
    return int(after)


def event_from_record(job_id: str, number: int, record: Mapping[str, Any]) -> JobEvent:
    """Line ``number`` of the event log as a ``JobEvent`` (its id is the padded line number)."""
    event_id = f"{number:0{EVENT_ID_WIDTH}d}"
    return JobEvent.model_validate({**record, "id": event_id, "job_id": job_id})


def resume_hint(folder: JobDir) -> str:
    """How to continue a job whose worker died, naming the checkpoint it would start from."""
    step = last_checkpoint(folder)
    start = f"from checkpoint-{step}" if step is not None else "from the start (no checkpoint yet)"
    return f"`rlft jobs resume {folder.job_id}` (or job.resume()) continues {start}"
