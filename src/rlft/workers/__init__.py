"""Jobs run by detached worker processes on this machine: the toolkit behind ``local``.

A backend whose training loop runs here (the local TRL runner, or a worker that drives a remote
training service such as Tinker) subclasses ``WorkerProvider`` and writes a worker that follows
the job-folder protocol below; folders, status, events, pause/resume/cancel, death detection and
repair come with it. Every name here is public and stable for third-party backends.

The folder protocol (``JobDir``), for a worker started as ``job.json``'s ``command``:

- read the job with ``JobDir(root).read_job(MyJobFile)``;
- record ``running`` (and later ``succeeded``/``failed``/``paused``/``cancelled``) with
  ``update_state`` and a matching ``kind="status"`` event (``raw={"status": ...}``), the event
  first;
- append metrics events (``metrics=StepMetrics(...)``) and, for each checkpoint, an event
  ``kind="checkpoint"`` with ``raw={"step": N, "path": ...}`` (a sealed local folder, or a URI
  the service keeps);
- between steps, obey ``JobDir.requested()`` (``"pause"``: save and record ``paused``;
  ``"cancel"``: record ``cancelled``) and exit.

``run_worker`` is such a worker's ``main``: it runs the job and records its outcome
(``record_outcome``), turning a ``WorkerFailure`` into a failed job with its code and message.

The launcher (``python -m rlft.workers.launcher``) records a worker that died without saying
how, with the signal and whether the out-of-memory killer acted.
"""

from rlft.workers.jobdir import (
    CHECKPOINT_MANIFEST,
    GUARD_DEFAULT,
    Action,
    ErrorRecord,
    JobDir,
    JobFile,
    JobState,
    LogCursor,
    atomic_write,
    checkpoint_problem,
    seal_checkpoint,
    utcnow,
)
from rlft.workers.lock import LockHeld, hold_lock, is_alive
from rlft.workers.provider import PlannedJob, WorkerProvider, WorkerSettings
from rlft.workers.records import last_checkpoint, resume_hint
from rlft.workers.worker import WorkerFailure, record_outcome, run_worker

__all__ = [
    "CHECKPOINT_MANIFEST",
    "GUARD_DEFAULT",
    "Action",
    "ErrorRecord",
    "JobDir",
    "JobFile",
    "JobState",
    "LockHeld",
    "LogCursor",
    "PlannedJob",
    "WorkerFailure",
    "WorkerProvider",
    "WorkerSettings",
    "atomic_write",
    "checkpoint_problem",
    "hold_lock",
    "is_alive",
    "last_checkpoint",
    "record_outcome",
    "resume_hint",
    "run_worker",
    "seal_checkpoint",
    "utcnow",
]
