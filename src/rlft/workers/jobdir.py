"""A worker job's folder: its spec, state, control requests and the append-only event log.

Shared by the provider (in the caller), the launcher and the worker, so it imports only the
standard library and pydantic. Layout under ``<home>/jobs/<job id>/``::

    job.json        what to run (written once by create_job; a backend's ``JobFile`` subclass)
    state.json      the recorded status, replaced atomically by whoever changes it
    control.json    a pending request from the caller: {"action": "pause" | "cancel"}
    events.jsonl    append-only; an event's id is its line number
    lock            flock-held by the launcher and the worker while either is alive
    worker.log      the worker's stdout and stderr
    base_model/     a model the worker built (the local runner's tiny model)
    output/         checkpoint-N/ folders, each sealed by rlft_checkpoint.json (local weights)
    final/          the trained model, once the job succeeded (local weights)
    reward_curve.png
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from rlft.exceptions import ProviderError
from rlft.provider import JobEvent, StepMetrics

__all__ = [
    "CHECKPOINT_MANIFEST",
    "EVENT_ID_WIDTH",
    "GUARD_DEFAULT",
    "Action",
    "ErrorRecord",
    "JobDir",
    "JobFile",
    "JobState",
    "LogCursor",
    "atomic_write",
    "checkpoint_problem",
    "corrupt_file",
    "event_record",
    "line_problem",
    "new_job_id",
    "seal_checkpoint",
    "utcnow",
]

Action = Literal["pause", "cancel"]
EVENT_ID_WIDTH = 8
"""Event ids are zero-padded line numbers, so they also sort as strings."""
CHECKPOINT_MANIFEST = "rlft_checkpoint.json"
"""Written into ``checkpoint-N/`` once every file of it is on disk: its files and their sizes."""
GUARD_DEFAULT: dict[str, JsonValue] = {"threshold": 0.5, "steps": 3}
REPAIR = "python -m rlft.workers.repair {folder}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id(prefix: str) -> str:
    """``local-20260101-120000-3fa2c1``: sortable by creation time, unique by its random tail."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(2)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def corrupt_file(path: Path, problem: str, fix: str, *, provider: str) -> ProviderError:
    """The one error for a damaged job file: which file, what is wrong, how to recover."""
    return ProviderError(
        f"{provider} job file {path} {problem}; {fix}",
        provider=provider,
        code="corrupt_job_file",
        path=str(path),
    )


def _problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {exc.start})"
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"is damaged ({where}: {first['msg']})" if where else f"is damaged ({first['msg']})"
    return f"is damaged ({exc})"


class JobFile(BaseModel):
    """``job.json``: what every worker job records; each backend subclasses it with its plan.

    Generic readers (the launcher, the provider's status reads, repairs) read it as this class,
    which keeps a subclass's fields as extras; the backend's worker reads its own subclass
    (``JobDir.read_job(MyJobFile)``), which should set ``extra="forbid"``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    created_at: datetime
    idempotency_key: str
    model: str | None
    """The model as the user named it (``None``: the backend's default)."""
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    train_file: str
    validation_file: str | None = None
    grader: dict[str, JsonValue]
    """The neutral grader, ``grader.model_dump(mode="json")``; rebuilt in the worker."""
    hyperparameters: dict[str, JsonValue]
    """The neutral hyperparameters as given, for the record."""
    command: list[str]
    """The worker command the launcher runs."""
    response_format: dict[str, JsonValue] | None = None
    grader_guard: dict[str, JsonValue] | None = Field(default_factory=lambda: dict(GUARD_DEFAULT))
    """When the worker stops a job whose grader keeps failing (``None``: never)."""
    settings_chosen: str = ""
    """The settings the backend chose from the data, and why (shown by ``rlft run``)."""


J = TypeVar("J", bound=JobFile)


class ErrorRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message: str
    code: str | None = None


class JobState(BaseModel):
    """``state.json``: the status as the worker (or, for a stop it forced, the provider) recorded
    it. ``status`` uses the neutral words (pending, running, paused, succeeded, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: str
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step: int | None = None
    total_steps: int | None = None
    attempt: int = 1
    """1 for the first run, +1 for each resume."""
    pid: int | None = None
    """The launcher's pid, which is also the worker's process group (for a last-resort kill)."""
    error: ErrorRecord | None = None
    fine_tuned_model: str | None = None
    exit_code: int | None = None
    """The worker's exit code (negative: the signal that killed it), once it exited."""
    signal: str | None = None
    """The signal that killed the worker (``"SIGKILL"``), when one did."""
    oom_killed: bool | None = None
    """Whether the out-of-memory killer acted while the worker ran, from the kernel's counters;
    ``None`` when they don't say (see ``_death``)."""


@dataclass
class LogCursor:
    """How far a reader got through ``events.jsonl``: a byte offset and a line count."""

    offset: int = 0
    lines: int = 0
    inode: int | None = None
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    partial: bool = False
    """The file ended in an unfinished line at the last read (being written, or cut)."""


class JobDir:
    """Paths and file operations for one job folder.

    Args:
        root: The folder, ``<home>/jobs/<job id>``.
        provider: The provider id that errors about the folder's files name.
    """

    def __init__(self, root: Path, *, provider: str = "local") -> None:
        self.root = root
        self.provider = provider

    @property
    def job_id(self) -> str:
        return self.root.name

    # --- paths -----------------------------------------------------------------------------

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def control_file(self) -> Path:
        return self.root / "control.json"

    @property
    def events_file(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def log_file(self) -> Path:
        return self.root / "worker.log"

    @property
    def base_model(self) -> Path:
        return self.root / "base_model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def final_model(self) -> Path:
        return self.root / "final"

    @property
    def reward_curve(self) -> Path:
        return self.root / "reward_curve.png"

    def exists(self) -> bool:
        return self.job_file.is_file()

    # --- job.json and state.json -----------------------------------------------------------

    @overload
    def read_job(self) -> JobFile: ...
    @overload
    def read_job(self, cls: type[J]) -> J: ...
    def read_job(self, cls: type[JobFile] = JobFile) -> JobFile:
        """``job.json`` as ``cls`` (a backend's subclass), or as the generic ``JobFile``."""
        try:
            return cls.model_validate_json(self.job_file.read_bytes())
        except (ValueError, ValidationError) as exc:
            raise corrupt_file(
                self.job_file,
                _problem(exc),
                "it holds the job's grader and settings and cannot be rebuilt: restore it from a "
                "backup, or start the job again",
                provider=self.provider,
            ) from None

    def write_job(self, job: JobFile) -> None:
        atomic_write(self.job_file, job.model_dump_json(indent=2))

    def read_state(self) -> JobState:
        try:
            return JobState.model_validate_json(self.state_file.read_bytes())
        except (ValueError, ValidationError) as exc:
            raise corrupt_file(
                self.state_file,
                _problem(exc),
                f"rebuild it from the event log with `{REPAIR.format(folder=self.root)}` (the "
                "damaged file is kept beside it)",
                provider=self.provider,
            ) from None

    def write_state(self, state: JobState) -> None:
        atomic_write(self.state_file, state.model_dump_json(indent=2))

    def update_state(self, **changes: Any) -> JobState:
        """Read, change and write the state (one writer at a time by construction)."""
        data = {**self.read_state().model_dump(), **changes, "updated_at": utcnow()}
        state = JobState.model_validate(data)
        self.write_state(state)
        return state

    # --- control requests ------------------------------------------------------------------

    def request(self, action: Action) -> None:
        """Ask the worker to pause or cancel at the next step boundary. Cancel beats pause."""
        if action == "pause" and self.requested() == "cancel":
            return
        atomic_write(self.control_file, json.dumps({"action": action, "at": utcnow().isoformat()}))

    def requested(self) -> Action | None:
        """The pending request, if any. Cheap: the worker calls it after every step."""
        try:
            action = json.loads(self.control_file.read_text(encoding="utf-8"))["action"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return action if action in ("pause", "cancel") else None

    def clear_request(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.control_file.unlink()

    # --- events ----------------------------------------------------------------------------

    def append_event(
        self,
        *,
        kind: str = "message",
        message: str = "",
        level: str = "info",
        metrics: StepMetrics | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        """Append one event as one JSON line, written with a single ``write`` in append mode."""
        record: dict[str, Any] = {
            "at": utcnow().isoformat(),
            "level": level,
            "kind": kind,
            "message": message,
        }
        if metrics is not None:
            record["metrics"] = metrics.model_dump(mode="json", exclude_defaults=True)
        if raw is not None:
            record["raw"] = raw
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        fd = os.open(self.events_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read_events(self, cursor: LogCursor | None = None, *, settled: bool = False) -> LogCursor:
        """Read new complete lines into ``cursor.events`` as ``(line number, record)``.

        A partly written last line is left for the next read, unless ``settled`` (no writer is
        alive): then it was cut by a crash. A cursor from another file (the folder was replaced)
        starts over.

        Raises:
            ProviderError: A line is not a JSON event (garbage, invalid UTF-8, cut), naming the
                file, the line and the repair command (``code="corrupt_job_file"``).
        """
        cursor = cursor if cursor is not None else LogCursor()
        try:
            with self.events_file.open("rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                if cursor.inode not in (None, inode):
                    cursor = LogCursor()
                cursor.inode = inode
                fh.seek(cursor.offset)
                data = fh.read()
        except FileNotFoundError:
            return cursor
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")[:-1]  # one per newline: event ids are line numbers
        if settled and data[end:].strip():
            self._bad_line(cursor.lines + len(lines) + 1, "is cut short")
        new: list[tuple[int, dict[str, Any]]] = []
        for number, line in enumerate(lines, start=cursor.lines + 1):
            if line.strip():
                record = event_record(line)
                if record is None:  # the cursor stays where it was: a repair can follow
                    self._bad_line(number, line_problem(line))
                new.append((number, record))
        cursor.events.extend(new)
        cursor.lines += len(lines)
        cursor.offset += end
        cursor.partial = bool(data[end:].strip())
        return cursor

    def _bad_line(self, number: int, problem: str) -> NoReturn:
        raise corrupt_file(
            self.events_file,
            f"line {number} {problem}",
            f"repair it with `{REPAIR.format(folder=self.root)}` (each bad line becomes a "
            "warning event, so event ids stay the same; the damaged file is kept beside it)",
            provider=self.provider,
        )

    def iter_events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every event in the log, oldest first."""
        return iter(self.read_events().events)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint_folders(self) -> list[tuple[int, Path]]:
        """Every ``output/checkpoint-N`` folder, complete or not, by step."""
        found: list[tuple[int, Path]] = []
        if not self.output_dir.is_dir():
            return found
        for path in self.output_dir.glob("checkpoint-*"):
            suffix = path.name.removeprefix("checkpoint-")
            if suffix.isdigit() and path.is_dir():
                found.append((int(suffix), path))
        return sorted(found)

    def checkpoint_dirs(self) -> list[tuple[int, Path]]:
        """``output/checkpoint-N`` folders that are complete (sealed and intact), by step."""
        return [
            (step, path) for step, path in self.checkpoint_folders() if not checkpoint_problem(path)
        ]


def event_record(line: bytes) -> dict[str, Any] | None:
    """The event on one line, or ``None`` when the line is not one (checked like a reader)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    try:
        JobEvent.model_validate({**record, "id": "0", "job_id": "-"})
    except ValidationError:
        return None
    return record


def line_problem(line: bytes) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text (byte {exc.start})"
    return "is not a JSON event"


# --- checkpoint seals -----------------------------------------------------------------------------


def seal_checkpoint(path: Path) -> None:
    """Mark ``checkpoint-N`` complete: flush its files to disk, then write the manifest.

    Called after the trainer saved every file. The manifest comes last and is replaced
    atomically, so a folder without one (a crash while saving) is never taken for complete, and
    a file shorter than recorded (cut by a crash or a full disk) is found later.
    """
    files: dict[str, int] = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.name == CHECKPOINT_MANIFEST:
            continue
        with file.open("rb") as fh:
            os.fsync(fh.fileno())
        files[file.relative_to(path).as_posix()] = file.stat().st_size
    atomic_write(path / CHECKPOINT_MANIFEST, json.dumps({"files": files}, indent=1))
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def checkpoint_problem(path: Path) -> str | None:
    """Why ``checkpoint-N`` can't be used (``None``: it is complete and intact)."""
    try:
        manifest = json.loads((path / CHECKPOINT_MANIFEST).read_bytes())
        files = manifest["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("no files")
    except FileNotFoundError:
        return "it was never completed (no rlft_checkpoint.json: the save was interrupted)"
    except (OSError, ValueError, KeyError, TypeError):
        return "its rlft_checkpoint.json is damaged"
    for name, size in sorted(files.items()):
        try:
            actual = (path / name).stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} when saved (truncated)"
    return None
