"""A local job's folder: its spec, state, control requests and the append-only event log.

Shared by the provider (in the caller), the launcher and the worker, so it imports only the
standard library and pydantic. Layout under ``<home>/jobs/<job id>/``::

    job.json        what to run (written once by create_job)
    state.json      the recorded status, replaced atomically by whoever changes it
    control.json    a pending request from the caller: {"action": "pause" | "cancel"}
    events.jsonl    append-only; an event's id is its line number
    lock            flock-held by the launcher and the worker while either is alive
    worker.log      the worker's stdout and stderr
    base_model/     the tiny demonstration model, when the job uses it
    output/         TRL's output_dir: checkpoint-N/ folders
    final/          the trained model, once the job succeeded
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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from rlft.provider import StepMetrics

__all__ = [
    "EVENT_ID_WIDTH",
    "Action",
    "JobDir",
    "JobFile",
    "JobState",
    "LogCursor",
    "atomic_write",
    "new_job_id",
    "utcnow",
]

Action = Literal["pause", "cancel"]
EVENT_ID_WIDTH = 8
"""Event ids are zero-padded line numbers, so they also sort as strings."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """``local-20260101-120000-3fa2c1``: sortable by creation time, unique by its random tail."""
    return f"local-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(2)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class JobFile(BaseModel):
    """``job.json``: everything the worker needs, resolved by the provider before launch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    created_at: datetime
    idempotency_key: str
    model: str | None
    """The model as the user named it (``None``: the tiny demonstration model)."""
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    train_file: str
    validation_file: str | None = None
    grader: dict[str, JsonValue]
    """The neutral grader, ``grader.model_dump(mode="json")``; rebuilt in the worker."""
    hyperparameters: dict[str, JsonValue]
    """The neutral hyperparameters as given, for the record."""
    grpo: dict[str, JsonValue]
    """``GRPOConfig`` keyword arguments, minus what only the worker can decide (the device)."""
    tiny: bool
    """Build the tiny demonstration model from the dataset instead of loading ``model``."""
    lora: dict[str, JsonValue] | None = None
    """``peft.LoraConfig`` keyword arguments, or ``None`` for full fine-tuning."""
    command: list[str]
    """The worker command the launcher runs (plain Python, or ``accelerate launch``)."""
    device: str = "auto"
    torch_threads: int | None = None
    offline: bool = True
    response_format: dict[str, JsonValue] | None = None


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


@dataclass
class LogCursor:
    """How far a reader got through ``events.jsonl``: a byte offset and a line count."""

    offset: int = 0
    lines: int = 0
    inode: int | None = None
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


class JobDir:
    """Paths and file operations for one job folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

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

    def read_job(self) -> JobFile:
        return JobFile.model_validate_json(self.job_file.read_text(encoding="utf-8"))

    def write_job(self, job: JobFile) -> None:
        atomic_write(self.job_file, job.model_dump_json(indent=2))

    def read_state(self) -> JobState:
        return JobState.model_validate_json(self.state_file.read_text(encoding="utf-8"))

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

    def read_events(self, cursor: LogCursor | None = None) -> LogCursor:
        """Read new complete lines into ``cursor.events`` as ``(line number, record)``.

        A partly written last line is left for the next read. A cursor from another file (the
        folder was replaced) starts over.
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
        for line in data[:end].splitlines():
            cursor.lines += 1
            if line.strip():
                cursor.events.append((cursor.lines, json.loads(line)))
        cursor.offset += end
        return cursor

    def iter_events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every event in the log, oldest first."""
        return iter(self.read_events().events)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint_dirs(self) -> list[tuple[int, Path]]:
        """``output/checkpoint-N`` folders that are complete, by step."""
        found: list[tuple[int, Path]] = []
        if not self.output_dir.is_dir():
            return found
        for path in self.output_dir.glob("checkpoint-*"):
            suffix = path.name.removeprefix("checkpoint-")
            if suffix.isdigit() and (path / "trainer_state.json").is_file():
                found.append((int(suffix), path))
        return sorted(found)
