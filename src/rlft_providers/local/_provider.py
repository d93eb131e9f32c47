"""LocalProvider: jobs as folders under the rlft home, each trained by a detached worker process.

This module imports no torch, transformers or TRL: the worker (``_worker``) does, in its own
process, so the caller's event loop never blocks and a job outlives the caller. File work runs
in threads (``anyio.to_thread``) under the provider's own limiter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio

from rlft.exceptions import CapabilityError, MissingDependencyError, ProviderError, UsageError
from rlft.provider import (
    Capabilities,
    Checkpoint,
    DatasetRole,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    Provider,
)
from rlft_providers.local._death import booted_at, explain_lost
from rlft_providers.local._errors import (
    LockHeld,
    hold_lock,
    is_alive,
    job_not_found,
    map_local_errors,
)
from rlft_providers.local._jobdir import (
    ErrorRecord,
    JobDir,
    JobFile,
    JobState,
    LogCursor,
    checkpoint_problem,
    new_job_id,
    utcnow,
)
from rlft_providers.local._launcher import resume_hint
from rlft_providers.local._plan import (
    TINY_MODEL,
    Plan,
    data_shape,
    default_python,
    grader_item_fields,
    is_tiny,
    plan_training,
    worker_command,
)
from rlft_providers.local._records import (
    check_model,
    checkpoints_from_events,
    event_from_record,
    parse_cursor,
    write_rows,
)
from rlft_providers.local._settings import LocalSettings

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.provider import CreateJobRequest, JobSpec

__all__ = ["LocalProvider"]

log = logging.getLogger("rlft.local")
T = TypeVar("T")
LAUNCHER_MODULE = "rlft_providers.local._launcher"
RENDERING = "trl-v1"  # bump when the uploaded row format changes: content hashes stay valid
ACTIVE = ("pending", "running")
POLL = 0.1
STALE_KEY_SECONDS = 5.0
# Failures resume() continues from the last complete checkpoint: the worker died, or the
# grader failed too often (a judge outage passes; a broken grader stops again).
RESUMABLE = ("worker_died", "worker_lost", "grader_errors")


class LocalProvider(Provider):
    """The ``local`` backend: GRPO with TRL on this machine, one worker subprocess per job."""

    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        list_jobs=True,
        download_results=True,
        generate=True,  # a named model, sampled in a subprocess (see generate)
        poll_interval=0.5,
    )
    settings: LocalSettings

    def __init__(self, *, settings: LocalSettings | None = None) -> None:
        settings = settings if settings is not None else LocalSettings()
        super().__init__(settings=settings)
        if not hasattr(os, "fork"):
            raise UsageError(
                "the local runner needs Linux or macOS (it detaches workers with fork and "
                "tracks them with flock); on Windows, run it under WSL"
            )
        if settings.python is None:  # the worker runs our interpreter: it needs the extra here
            for package in ("torch", "transformers", "trl"):
                if find_spec(package) is None:
                    raise MissingDependencyError("provider 'local'", package=package, extra="local")
        self._limiter = anyio.CapacityLimiter(4)
        self._cursors: dict[str, LogCursor] = {}

    # --- paths -------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The provider's folder: ``jobs/``, ``datasets/`` and ``keys/`` live here."""
        return self.settings.resolved_home()

    def job_dir(self, job_id: str) -> JobDir:
        """The folder of a job (``NotFoundError`` when there is no such job)."""
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise job_not_found(job_id)
        folder = JobDir(self.home / "jobs" / job_id)
        if not folder.exists():
            raise job_not_found(job_id)
        return folder

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        with map_local_errors():
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    # --- checks ------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Map and range-check the hyperparameters and check the model exists offline.

        Raises:
            HyperparameterError: A setting is out of range or not a ``GRPOConfig`` field.
            MissingDependencyError: An option needs a package that is not installed.
            UsageError: The model folder does not exist, or the model is not available offline.
        """
        _plan(spec)
        if not is_tiny(spec.model):
            check_model(str(spec.model), offline=self.settings.offline)

    # --- datasets ----------------------------------------------------------------------------

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Copy the dataset, rendered as TRL rows, into ``<home>/datasets``; return its path.

        Files are named by content hash, so uploading the same data twice writes once.
        """
        path = self.home / "datasets" / f"{dataset.content_hash}.{RENDERING}.jsonl"
        return await self._run(write_rows, path, dataset)

    # --- jobs --------------------------------------------------------------------------------

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Create the job folder and start its worker; return the existing job for a known key."""
        return await self._run(self._create_job, request)

    def _create_job(self, request: CreateJobRequest) -> JobRecord:
        spec = request.spec
        plan = _plan(spec)
        keys = self.home / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        key_file = keys / hashlib.sha256(request.idempotency_key.encode()).hexdigest()
        job_id = new_job_id()
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
            folder = JobDir(self.home / "jobs" / job_id)
            folder.root.mkdir(parents=True)
            python = self.settings.python or default_python()
            job = JobFile(
                id=job_id,
                created_at=utcnow(),
                idempotency_key=request.idempotency_key,
                model=spec.model,
                name=spec.name,
                labels=dict(spec.labels),
                train_file=request.training_file,
                validation_file=request.validation_file,
                grader=spec.grader.model_dump(mode="json"),
                hyperparameters=spec.hyperparameters.model_dump(mode="json"),
                grpo=plan.grpo,
                tiny=is_tiny(spec.model),
                lora=plan.lora,
                command=worker_command(python, folder.root, plan.accelerate),
                device=self.settings.device,
                torch_threads=self.settings.torch_threads or (1 if is_tiny(spec.model) else None),
                offline=self.settings.offline,
                response_format=spec.response_format,
                grader_guard=plan.grader_guard.model_dump() if plan.grader_guard else None,
                settings_chosen=plan.summary(),
            )
            folder.write_job(job)
            with hold_lock(folder) as lock_fd:  # held before "pending" exists: never seen dead
                folder.write_state(JobState(status="pending"))
                folder.append_event(kind="status", message="created", raw={"status": "pending"})
                if plan.reasons:  # `rlft run` prints it: the settings a user did not choose
                    folder.append_event(message=plan.summary(), raw={"chosen": plan.reasons})
                self._launch(folder, lock_fd, python)
        except BaseException:
            key_file.unlink(missing_ok=True)  # a retry may create the job again
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
                return self._record(JobDir(self.home / "jobs" / job_id))
            if age > STALE_KEY_SECONDS:  # a creator writes the job's state within milliseconds
                key_file.unlink(missing_ok=True)
                return None
            time.sleep(POLL)

    def _launch(self, folder: JobDir, lock_fd: int, python: str) -> None:
        env = dict(os.environ)
        env.update(
            PYTHONUNBUFFERED="1",
            TOKENIZERS_PARALLELISM="false",
            MPLBACKEND="Agg",
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        if self.settings.offline:  # never wait on the network behind a firewall
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        command = [python, "-m", LAUNCHER_MODULE, str(folder.root), str(lock_fd)]
        with folder.log_file.open("ab") as log, _starting(python, folder):
            # The launcher forks and returns at once (see _launcher): no zombie, no Popen to
            # keep, and its own session keeps the caller's Ctrl-C away from the job.
            starter = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,),
                start_new_session=True,
                cwd=folder.root,
                env=env,
            )
        if starter.wait() != 0:
            raise UsageError(
                f"could not start the local worker with {python!r} (see {folder.log_file}); "
                "set [local] python in rlft.toml to an interpreter with rlft[local] installed"
            )

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
            model=job.model or TINY_MODEL,
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
        folders = [JobDir(p) for p in root.iterdir() if (p / "state.json").is_file()]
        jobs = []
        for folder in folders:
            try:
                jobs.append(self._record(folder))
            except ProviderError as exc:  # one damaged folder must not hide every other job
                log.warning("skipping a local job: %s", exc)
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
        """Complete checkpoints by step; ``model`` is a folder ``transformers`` loads.

        A checkpoint still being written, or damaged since (a file cut short), is left out; a
        damaged one is logged as a warning on the ``rlft.local`` logger.
        """
        events = await self.list_events(job_id)
        return await self._run(self._checkpoints, job_id, events)

    def _checkpoints(self, job_id: str, events: list[JobEvent]) -> list[Checkpoint]:
        usable = []
        for checkpoint in checkpoints_from_events(job_id, events):
            problem = checkpoint_problem(Path(checkpoint.model))
            if problem is None:
                usable.append(checkpoint)
            else:
                log.warning("job %s: skipping %s: %s", job_id, checkpoint.model, problem)
        return usable

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample ``model`` once per prompt in a subprocess (torch never loads in the caller).

        Raises:
            CapabilityError: The tiny demonstration model: it is built from the training set when
                the job starts, so there is no base model to sample before.
            ProviderError: The sampler failed (its error output is in the message).
        """
        if is_tiny(model):
            raise CapabilityError(
                provider=self.name,
                operation="inference",
                reason="the tiny demonstration model is built from the training set when the job "
                "starts, so there is no base model to sample; name a model to preflight it",
            )
        assert model is not None
        check_model(model, offline=self.settings.offline)
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        if self.settings.offline:
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        request = {
            "model": model,
            "prompts": [[dict(m) for m in messages] for messages in prompts],
            "max_tokens": max_tokens or 64,
        }
        python = self.settings.python or default_python()
        result = await anyio.run_process(
            [python, "-m", "rlft_providers.local._sample"],
            input=json.dumps(request).encode(),
            env=env,
            check=False,
        )
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise ProviderError(
                f"sampling {model!r} failed (exit {result.returncode}): " + " | ".join(tail),
                provider=self.name,
            )
        answers: list[str] = json.loads(result.stdout)
        return answers

    async def download_results(self, job_id: str, folder: Path) -> list[Path]:
        """Copy the reward curve, the event log and the worker log into ``folder``."""
        return await self._run(self._download, job_id, folder)

    def _download(self, job_id: str, target: Path) -> list[Path]:
        import shutil

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
            state.error is not None and state.error.code in RESUMABLE
        )
        if state.status != JobStatus.PAUSED.value and not died:
            raise UsageError(
                f"job {job_id} is {state.status}: only a paused job, or one whose worker died, "
                "can resume"
            )
        job = folder.read_job()
        python = job.command[0]
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
                self._launch(folder, lock_fd, python)
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
        """Check a job folder and repair what can be repaired (see ``_repair``).

        Returns ``(what was repaired, what could not be)``; each damaged file is kept beside
        its replacement. Same as ``python -m rlft_providers.local._repair <job folder>``.

        Raises:
            UsageError: The job's worker is running.
        """
        from rlft_providers.local._repair import repair

        def run() -> tuple[list[str], list[str]]:
            folder = JobDir(self.home / "jobs" / job_id)
            if not folder.root.is_dir() or "/" in job_id or job_id.startswith("."):
                raise job_not_found(job_id)
            self._cursors.pop(job_id, None)  # ids stay, but the file is new
            try:
                return repair(folder)
            except LockHeld:
                raise UsageError(f"job {job_id}'s worker is running; stop it first") from None

        return await self._run(run)

    async def aclose(self) -> None:
        """Nothing to close: workers are detached and keep running. Idempotent."""
        self._cursors.clear()


# --- helpers ------------------------------------------------------------------------------------


def _settled(record: JobRecord) -> bool:
    return record.status not in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSING)


def _terminal(record: JobRecord) -> bool:
    return record.status.is_terminal


@contextlib.contextmanager
def _starting(python: str, folder: JobDir) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise UsageError(
            f"could not start the local worker with {python!r}: {exc}; set [local] python in "
            "rlft.toml to an interpreter with rlft[local] installed"
        ) from exc


def _plan(spec: JobSpec) -> Plan:
    """The training plan, with the tiny model's settings sized from the training rows."""
    data = None
    if is_tiny(spec.model):
        fields = grader_item_fields(spec.grader.model_dump(mode="json"))
        data = data_shape((e.item for e in spec.train), rows=len(spec.train), fields=fields)
    return plan_training(
        spec.hyperparameters,
        model=spec.model,
        train_rows=len(spec.train),
        has_validation=spec.validation is not None,
        data=data,
    )
