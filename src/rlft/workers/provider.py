"""``WorkerProvider``: a backend whose jobs are folders on this machine, each run by a detached
worker process.

The local TRL runner and the Tinker backend are both this: the training loop runs here (the
Tinker worker drives a remote service), so the job's folder, event log, status, pause, resume,
cancel, death detection and repair are the same machinery. A subclass supplies what differs:
the plan written into ``job.json`` (with the worker command), the worker's environment, and the
backend's own operations (``check_spec``, ``upload_dataset``, ``generate``).

This module imports no torch: the worker does, in its own process, so the caller's event loop
never blocks and a job outlives the caller. File work runs in threads under the provider's own
limiter.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import Field, JsonValue

from rlft.exceptions import ProviderError, UsageError
from rlft.provider import (
    Checkpoint,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    Provider,
    ProviderSettings,
)
from rlft.workers.death import booted_at, explain_lost
from rlft.workers.jobdir import (
    ErrorRecord,
    JobDir,
    JobFile,
    JobState,
    LogCursor,
    new_job_id,
    utcnow,
)
from rlft.workers.lock import LockHeld, hold_lock, is_alive, job_not_found, map_folder_errors
from rlft.workers.records import (
    checkpoint_path_problem,
    checkpoints_from_events,
    event_from_record,
    parse_cursor,
    resume_hint,
)

if TYPE_CHECKING:
    from rlft.provider import CreateJobRequest

__all__ = ["PlannedJob", "WorkerProvider", "WorkerSettings"]

T = TypeVar("T")
LAUNCHER_MODULE = "rlft.workers.launcher"
ACTIVE = ("pending", "running")
POLL = 0.1
STALE_KEY_SECONDS = 5.0


class WorkerSettings(ProviderSettings):
    """Settings every worker backend has; subclass it for the backend's own section."""

    home: Path | None = None
    """Where jobs and datasets live; ``None`` means ``rlft_home() / <provider id>``."""
    python: str | None = None
    """The Python that runs workers; ``None`` is the caller's own interpreter."""
    stop_timeout: float = Field(default=30.0, gt=0)
    """Seconds ``cancel`` waits for the worker to stop at a step boundary before killing it, and
    ``pause`` waits for the checkpoint before returning ``pausing``."""


@dataclass(frozen=True)
class PlannedJob:
    """What ``WorkerProvider.plan_job`` returns: the job file, and why settings were chosen."""

    job: JobFile
    chosen: Mapping[str, JsonValue] = field(default_factory=dict)
    """The settings the backend chose that the user did not, with reasons (an event's raw)."""


class WorkerProvider(Provider):
    """Base class of a backend whose jobs run in detached worker processes on this machine.

    Subclasses set ``name``, ``capabilities`` and a ``WorkerSettings`` subclass, and implement
    ``plan_job`` (and the backend's own ``check_spec``, ``upload_dataset``...). The worker they
    name in ``job.json`` follows the folder protocol of ``rlft.workers.jobdir``: it records its
    status in ``state.json``, appends events (``kind="checkpoint"`` with ``raw={"step", "path"}``
    for each checkpoint), polls ``JobDir.requested()`` between steps, and exits.
    """

    settings: WorkerSettings
    default_model: str = "default"
    """The model shown for a job created without one."""
    resumable_errors: frozenset[str] = frozenset({"worker_died", "worker_lost", "grader_errors"})
    """Error codes of failed jobs that ``resume`` continues from the last saved state: the
    worker died, or the grader failed too often (a judge outage passes; a broken grader stops
    again). A backend adds its own (Tinker: ``connection_lost``)."""

    def __init__(self, *, settings: WorkerSettings) -> None:
        super().__init__(settings=settings)
        if not hasattr(os, "fork"):
            raise UsageError(
                f"the {self.name} backend needs Linux or macOS (it detaches workers with fork and "
                "tracks them with flock); on Windows, run it under WSL"
            )
        self._limiter = anyio.CapacityLimiter(4)
        self._cursors: dict[str, LogCursor] = {}
        self.log = logging.getLogger(f"rlft.{self.name}")

    # --- what a backend supplies ---------------------------------------------------------------

    @abc.abstractmethod
    def plan_job(self, request: CreateJobRequest, *, job_id: str, folder: JobDir) -> PlannedJob:
        """The ``job.json`` for a new job (its ``command`` runs the worker). Raise to refuse."""

    def worker_env(self, job: JobFile) -> dict[str, str]:
        """Environment variables for the launcher and worker, on top of the caller's own."""
        return {}

    # --- paths -------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The provider's folder: ``jobs/``, ``datasets/`` and ``keys/`` live here."""
        if self.settings.home is not None:
            return self.settings.home.expanduser()
        from rlft.provider import rlft_home

        return rlft_home() / self.name

    def folder(self, root: Path) -> JobDir:
        """The ``JobDir`` at ``root``, naming this provider in its errors."""
        return JobDir(root, provider=self.name)

    def job_dir(self, job_id: str) -> JobDir:
        """The folder of a job (``NotFoundError`` when there is no such job)."""
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise job_not_found(job_id, provider=self.name)
        folder = self.folder(self.home / "jobs" / job_id)
        if not folder.exists():
            raise job_not_found(job_id, provider=self.name)
        return folder

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        with map_folder_errors(self.name):
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    # --- jobs --------------------------------------------------------------------------------

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Create the job folder and start its worker; return the existing job for a known key."""
        return await self._run(self._create_job, request)

    def _create_job(self, request: CreateJobRequest) -> JobRecord:
        keys = self.home / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        key_file = keys / hashlib.sha256(request.idempotency_key.encode()).hexdigest()
        job_id = new_job_id(self.name)
        while True:
            try:
                with key_file.open("x", encoding="utf-8") as fh:  # atomic: one creator wins
                    fh.write(job_id)
                break
            except FileExistsError:
                existing = self._existing(key_file)
                if existing is not None:
                    return existing
        try:
            folder = self.folder(self.home / "jobs" / job_id)
            folder.root.mkdir(parents=True)
            planned = self.plan_job(request, job_id=job_id, folder=folder)
            folder.write_job(planned.job)
            with hold_lock(folder) as lock_fd:  # held before "pending" exists: never seen dead
                folder.write_state(JobState(status="pending"))
                folder.append_event(kind="status", message="created", raw={"status": "pending"})
                if planned.chosen:  # `rlft run` prints it: the settings a user did not choose
                    folder.append_event(
                        message=planned.job.settings_chosen, raw={"chosen": dict(planned.chosen)}
                    )
                self._launch(folder, lock_fd, planned.job)
        except BaseException:
            key_file.unlink(missing_ok=True)  # a retry may create the job again
            with contextlib.suppress(OSError):  # nothing started: leave no half-made folder
                if not (self.home / "jobs" / job_id / "state.json").exists():
                    shutil.rmtree(self.home / "jobs" / job_id)
            raise
        return self._record(folder)

    def _existing(self, key_file: Path) -> JobRecord | None:
        """The job a key names, or ``None`` after removing a key whose creator died."""
        while True:
            try:
                job_id = key_file.read_text(encoding="utf-8").strip()
                age = time.time() - key_file.stat().st_mtime
            except FileNotFoundError:  # its creator failed and removed it: try again
                return None
            if job_id and (self.home / "jobs" / job_id / "state.json").is_file():
                return self._record(self.folder(self.home / "jobs" / job_id))
            if age > STALE_KEY_SECONDS:  # a creator writes the job's state within milliseconds
                key_file.unlink(missing_ok=True)
                return None
            time.sleep(POLL)

    def _launch(self, folder: JobDir, lock_fd: int, job: JobFile) -> None:
        python = job.command[0] if job.command else sys.executable
        env = dict(os.environ)
        env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg")
        env.update(self.worker_env(job))
        command = [python, "-m", LAUNCHER_MODULE, str(folder.root), str(lock_fd), self.name]
        with folder.log_file.open("ab") as log_file, self._starting(python):
            # The launcher forks and returns at once (see launcher): no zombie, no Popen to
            # keep, and its own session keeps the caller's Ctrl-C away from the job.
            starter = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,),
                start_new_session=True,
                cwd=folder.root,
                env=env,
            )
        if starter.wait() != 0:
            raise UsageError(
                f"could not start the {self.name} worker with {python!r} (see {folder.log_file}); "
                f"{self._python_fix()}"
            )

    def _python_fix(self) -> str:
        return (
            f"set [{self.name}] python in rlft.toml to an interpreter with rlft[{self.name}] "
            "installed"
        )

    @contextlib.contextmanager
    def _starting(self, python: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise UsageError(
                f"could not start the {self.name} worker with {python!r}: {exc}; "
                f"{self._python_fix()}"
            ) from exc

    async def get_job(self, job_id: str) -> JobRecord:
        """The job's status as its worker recorded it (a dead worker without one: failed)."""
        return await self._run(lambda: self._record(self.job_dir(job_id)))

    def _state(self, folder: JobDir) -> JobState:
        state = folder.read_state()
        if state.status not in ACTIVE or is_alive(folder):
            return state
        try:
            with hold_lock(folder):  # one recorder; a worker that just started holds it
                state = folder.read_state()  # the launcher may have recorded the end meanwhile
                if state.status not in ACTIVE:
                    return state
                why = explain_lost(state.updated_at, booted_at())
                message = (
                    "the worker and its launcher stopped without recording how the job ended "
                    f"({why}); see {folder.log_file}; {resume_hint(folder)}"
                )
                folder.append_event(
                    kind="status",
                    level="error",
                    message=f"failed: {message}",
                    raw={"status": "failed"},
                )
                return folder.update_state(
                    status="failed",
                    finished_at=utcnow(),
                    error=ErrorRecord(message=message, code="worker_lost"),
                )
        except LockHeld:
            return folder.read_state()

    def _record(self, folder: JobDir) -> JobRecord:
        job = folder.read_job()
        state = self._state(folder)
        status = JobStatus(state.status)
        if status is JobStatus.RUNNING and folder.requested() == "pause":
            status = JobStatus.PAUSING
        raw: dict[str, Any] = {
            **state.model_dump(mode="json"),
            "folder": str(folder.root),
            "log": str(folder.log_file),
        }
        if folder.reward_curve.is_file():
            raw["reward_curve"] = str(folder.reward_curve)
        if job.settings_chosen:  # `rlft run` prints it once the job exists
            raw["settings_chosen"] = job.settings_chosen
        return JobRecord(
            id=job.id,
            provider=self.name,
            status=status,
            provider_status=status.value,
            model=job.model or self.default_model,
            fine_tuned_model=state.fine_tuned_model if status is JobStatus.SUCCEEDED else None,
            name=job.name,
            created_at=job.created_at,
            finished_at=state.finished_at,
            error=JobErrorInfo(message=state.error.message, code=state.error.code)
            if state.error
            else None,
            metadata=dict(job.labels),
            raw=raw,
        )

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """The most recent jobs first."""
        return await self._run(self._list_jobs, limit)

    def _list_jobs(self, limit: int) -> list[JobRecord]:
        root = self.home / "jobs"
        if not root.is_dir():
            return []
        folders = [self.folder(p) for p in root.iterdir() if (p / "state.json").is_file()]
        jobs = []
        for folder in folders:
            try:
                jobs.append(self._record(folder))
            except ProviderError as exc:  # one damaged folder must not hide every other job
                self.log.warning("skipping a %s job: %s", self.name, exc)
        jobs.sort(key=lambda r: (r.created_at or utcnow(), r.id), reverse=True)
        return jobs[:limit]

    # --- events and checkpoints --------------------------------------------------------------

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        """Events after the cursor ``after`` (an event id), oldest first."""
        position = parse_cursor(after)
        return await self._run(self._list_events, job_id, position)

    def _list_events(self, job_id: str, position: int) -> list[JobEvent]:
        folder = self.job_dir(job_id)
        cursor = folder.read_events(self._cursors.get(job_id))
        if cursor.partial and not is_alive(folder):  # no writer: cut by a crash, unless the
            cursor = folder.read_events(cursor, settled=True)  # writer finished it meanwhile
        self._cursors[job_id] = cursor
        return [event_from_record(job_id, n, record) for n, record in cursor.events if n > position]

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Complete checkpoints by step, from the worker's ``checkpoint`` events.

        A local checkpoint still being written, or damaged since (a file cut short), is left
        out and logged as a warning on the ``rlft.<provider id>`` logger.
        """
        events = await self.list_events(job_id)
        return await self._run(self._checkpoints, job_id, events)

    def _checkpoints(self, job_id: str, events: list[JobEvent]) -> list[Checkpoint]:
        usable = []
        for checkpoint in checkpoints_from_events(job_id, events):
            problem = checkpoint_path_problem(checkpoint.model)
            if problem is None:
                usable.append(checkpoint)
            else:
                self.log.warning("job %s: skipping %s: %s", job_id, checkpoint.model, problem)
        return usable

    async def download_results(self, job_id: str, folder: Path) -> list[Path]:
        """Copy the reward curve, the event log and the worker log into ``folder``."""
        return await self._run(self._download, job_id, folder)

    def _download(self, job_id: str, target: Path) -> list[Path]:
        source = self.job_dir(job_id)
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for path in (source.reward_curve, source.events_file, source.log_file):
            if path.is_file():
                written.append(Path(shutil.copy2(path, target / path.name)))
        return written

    # --- control -----------------------------------------------------------------------------

    async def pause_job(self, job_id: str) -> JobRecord:
        """Ask the worker to save a checkpoint and stop; wait up to ``stop_timeout`` for it.

        Returns ``paused``, or ``pausing`` if the current step outlasts the wait.

        Raises:
            UsageError: The job is not pending or running, or it ended otherwise (succeeded,
                failed, cancelled) before it could pause: the message says how.
        """
        record = await self.get_job(job_id)
        if record.status in (JobStatus.PAUSED, JobStatus.PAUSING):
            return record
        if record.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            raise UsageError(
                f"job {job_id} is {record.status.value}: only a pending or running job can pause"
            )
        await self._run(self.job_dir(job_id).request, "pause")
        record = await self._wait_until(job_id, _settled, self.settings.stop_timeout)
        if record.status.is_terminal:  # e.g. its grader-health rule stopped it meanwhile
            await self._run(self.job_dir(job_id).clear_request)
            why = f": {record.error.message}" if record.error else ""
            raise UsageError(f"job {job_id} {record.status.value} before it could pause{why}")
        return record

    async def resume_job(self, job_id: str) -> JobRecord:
        """Start a new worker that continues from the last checkpoint (same step count)."""
        return await self._run(self._resume, job_id)

    def _resume(self, job_id: str) -> JobRecord:
        folder = self.job_dir(job_id)
        state = self._state(folder)
        died = state.status == JobStatus.FAILED.value and (
            state.error is not None and state.error.code in self.resumable_errors
        )
        if state.status != JobStatus.PAUSED.value and not died:
            raise UsageError(
                f"job {job_id} is {state.status}: only a paused job, or one whose worker died, "
                "can resume"
            )
        job = folder.read_job()
        try:
            # A worker that recorded "paused" may still be exiting: wait for it to let go.
            with hold_lock(folder, wait=self.settings.stop_timeout) as lock_fd:
                folder.clear_request()
                attempt = state.attempt + 1
                folder.update_state(
                    status="pending",
                    attempt=attempt,
                    finished_at=None,
                    error=None,
                    exit_code=None,
                    signal=None,
                    oom_killed=None,
                )
                why = " after the worker died" if died else ""
                folder.append_event(
                    kind="status",
                    message=f"resuming{why} (run {attempt})",
                    raw={"status": "pending"},
                )
                self._launch(folder, lock_fd, job)
        except LockHeld:
            raise UsageError(
                f"job {job_id}'s previous worker did not exit within "
                f"{self.settings.stop_timeout:g}s; retry"
            ) from None
        return self._record(folder)

    async def cancel_job(self, job_id: str) -> JobRecord:
        """Stop the job at the next step boundary (killing it after ``stop_timeout``)."""
        record = await self.get_job(job_id)
        if record.status.is_terminal:
            return record
        folder = self.job_dir(job_id)
        if record.status is JobStatus.PAUSED:  # no worker to ask
            return await self._run(self._force_cancelled, folder, "cancelled while paused")
        if record.status is JobStatus.PENDING:
            # Still importing or building the model: no step to finish, nothing to lose, and the
            # worker would only see the request after its first step.
            await self._run(self._kill, folder)
            return await self._run(self._force_cancelled, folder, "cancelled before training")
        await self._run(folder.request, "cancel")
        record = await self._wait_until(job_id, _terminal, self.settings.stop_timeout)
        if record.status.is_terminal:
            return record
        await self._run(self._kill, folder)
        return await self._run(
            self._force_cancelled,
            folder,
            f"cancelled: the worker did not stop within {self.settings.stop_timeout:g}s and was "
            "killed",
        )

    def _kill(self, folder: JobDir) -> None:
        # Each wait ends when what it waits for happens; stop_timeout only bounds it, so a busy
        # machine makes a kill slower, never incomplete.
        deadline = time.monotonic() + self.settings.stop_timeout
        pid = folder.read_state().pid
        while pid is None and is_alive(folder) and time.monotonic() < deadline:
            time.sleep(POLL)  # a launcher started a moment ago may not have written its pid yet
            pid = folder.read_state().pid
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, self.settings.stop_timeout)):
            # The lock proves the group is still ours: never signal a recycled pid.
            if pid is None or not is_alive(folder):
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            until = time.monotonic() + grace
            while is_alive(folder) and time.monotonic() < until:
                time.sleep(POLL)

    def _force_cancelled(self, folder: JobDir, message: str) -> JobRecord:
        state = folder.read_state()
        if state.status in ACTIVE or state.status == JobStatus.PAUSED.value:
            folder.append_event(kind="status", message=message, raw={"status": "cancelled"})
            folder.clear_request()
            folder.update_state(status="cancelled", finished_at=utcnow())
        return self._record(folder)

    async def _wait_until(
        self, job_id: str, done: Callable[[JobRecord], bool], timeout: float
    ) -> JobRecord:
        record = await self.get_job(job_id)
        with anyio.move_on_after(timeout):
            while not done(record):
                await anyio.sleep(POLL)
                record = await self.get_job(job_id)
        return record

    async def repair_job(self, job_id: str) -> tuple[list[str], list[str]]:
        """Check a job folder and repair what can be repaired (see ``rlft.workers.repair``).

        Returns ``(what was repaired, what could not be)``; each damaged file is kept beside
        its replacement. Same as ``python -m rlft.workers.repair <job folder>``.

        Raises:
            UsageError: The job's worker is running.
        """
        from rlft.workers.repair import repair

        def run() -> tuple[list[str], list[str]]:
            if not job_id or "/" in job_id or job_id.startswith("."):
                raise job_not_found(job_id, provider=self.name)
            folder = self.folder(self.home / "jobs" / job_id)
            if not folder.root.is_dir():
                raise job_not_found(job_id, provider=self.name)
            self._cursors.pop(job_id, None)  # ids stay, but the file is new
            try:
                return repair(folder)
            except LockHeld:
                raise UsageError(f"job {job_id}'s worker is running; stop it first") from None

        return await self._run(run)

    async def aclose(self) -> None:
        """Nothing to close: workers are detached and keep running. Idempotent."""
        self._cursors.clear()


def _settled(record: JobRecord) -> bool:
    return record.status not in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSING)


def _terminal(record: JobRecord) -> bool:
    return record.status.is_terminal
