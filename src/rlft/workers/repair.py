"""Check and repair a worker job folder: ``python -m rlft.workers.repair <job folder>...``.

What can be rebuilt is rebuilt, and every damaged file is kept beside the new one as
``<name>.damaged-<time>``:

- ``events.jsonl``: each unreadable line (garbage, invalid UTF-8, a line cut by a crash) becomes
  a warning event that says so. Lines are replaced, never removed, because an event's id is its
  line number: cursors saved by readers (the job store) stay valid.
- ``state.json``: rebuilt from the event log (the last status, step, run and error). A job that
  was running is then found dead by the next status read and recorded ``failed`` (resumable).
- ``job.json`` holds the grader and settings and can't be rebuilt: reported, not touched.
- Damaged checkpoints are reported; ``resume`` skips them and moves them aside.

It refuses to touch a job whose worker is alive. Light: standard library, pydantic, rlft.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from rlft.exceptions import ProviderError
from rlft.workers.jobdir import (
    ErrorRecord,
    JobDir,
    JobState,
    atomic_write,
    checkpoint_problem,
    event_record,
    line_problem,
    utcnow,
)
from rlft.workers.lock import LockHeld, hold_lock

__all__ = ["main", "repair"]

STATUSES = ("pending", "running", "paused", "succeeded", "failed", "cancelled")


def _backup(path: Path) -> Path:
    target = path.with_name(f"{path.name}.damaged-{utcnow().strftime('%Y%m%d-%H%M%S-%f')}")
    shutil.copy2(path, target)
    return target


def _placeholder(number: int, problem: str, backup: Path) -> bytes:
    record = {
        "at": utcnow().isoformat(),
        "level": "warning",
        "kind": "message",
        "message": f"event line {number} {problem} and was replaced by a repair; the original "
        f"is in {backup}",
    }
    return json.dumps(record, separators=(",", ":")).encode()


def _repair_events(folder: JobDir) -> list[str]:
    path = folder.events_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    cut = lines.pop()  # what follows the last newline: b"" unless the last line was cut
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and event_record(line) is None:
            bad.append((number, line_problem(line)))
    if cut.strip():
        lines.append(cut)
        bad.append((len(lines), "was cut short"))
    if not bad:
        return []
    backup = _backup(path)
    for number, problem in bad:
        lines[number - 1] = _placeholder(number, problem, backup)
    text = b"".join(line + b"\n" for line in lines)
    tmp = path.with_name(f".{path.name}.repair.tmp")
    tmp.write_bytes(text)
    tmp.replace(path)
    numbers = ", ".join(str(n) for n, _ in bad)
    return [f"{path}: replaced unreadable line(s) {numbers} by warning events (kept {backup})"]


def _rebuilt_state(folder: JobDir) -> JobState:
    """The state as the event log tells it."""
    status, step, attempt = "pending", None, 1
    error: ErrorRecord | None = None
    started = finished = None
    for _, record in folder.read_events(settled=True).events:
        raw: dict[str, Any] = record.get("raw") or {}
        metrics: dict[str, Any] = record.get("metrics") or {}
        if isinstance(metrics.get("step"), int):
            step = metrics["step"]
        if record.get("kind") != "status" or raw.get("status") not in STATUSES:
            continue
        status = str(raw["status"])
        if status == "pending" and str(record.get("message", "")).startswith("resuming"):
            attempt += 1
        if status == "running" and started is None:
            started = record.get("at")
        error = (
            ErrorRecord(message=str(record.get("message", "")), code="restored")
            if status == "failed"
            else None
        )
        finished = record.get("at") if status in ("succeeded", "failed", "cancelled") else None
    data: dict[str, Any] = {
        "status": status,
        "step": step,
        "attempt": attempt,
        "error": error,
        "started_at": started,
        "finished_at": finished,
    }
    if status == "succeeded" and (folder.final_model / "config.json").is_file():
        data["fine_tuned_model"] = str(folder.final_model)
    return JobState.model_validate(data)


def _repair_state(folder: JobDir) -> list[str]:
    path = folder.state_file
    try:
        folder.read_state()
        return []
    except FileNotFoundError:
        backup = None
    except ProviderError:
        backup = _backup(path)
    state = _rebuilt_state(folder)
    atomic_write(path, state.model_dump_json(indent=2))
    kept = f" (kept {backup})" if backup else ""
    return [f"{path}: rebuilt from the event log as {state.status!r}{kept}"]


def repair(folder: JobDir) -> tuple[list[str], list[str]]:
    """Repair ``folder``; return ``(what was repaired, what could not be)``.

    Raises:
        LockHeld: The job's worker or launcher is alive.
    """
    done: list[str] = []
    left: list[str] = []
    with hold_lock(folder):  # no worker may write while we rewrite its files
        try:
            folder.read_job()
        except ProviderError as exc:
            left.append(str(exc))
        done += _repair_events(folder)
        done += _repair_state(folder)
        for _, path in folder.checkpoint_folders():
            problem = checkpoint_problem(path)
            if problem is not None:
                left.append(f"{path}: {problem} (not listed; resume skips it)")
    return done, left


def _provider_of(root: Path) -> str:
    """The provider named in ``job.json`` (for messages), or ``"local"`` when it can't be read."""
    try:
        provider = json.loads((root / "job.json").read_bytes()).get("provider")
    except (OSError, ValueError, AttributeError):
        return "local"
    return provider if isinstance(provider, str) and provider else "local"


def main(argv: list[str] | None = None) -> int:
    """Repair each job folder given; exit 1 when something could not be repaired."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(f"usage: python -m {__spec__.name if __spec__ else __name__} <job folder>...")
        return 2
    code = 0
    for arg in args:
        folder = JobDir(Path(arg), provider=_provider_of(Path(arg)))
        if not folder.root.is_dir():
            print(f"{arg}: no such job folder", file=sys.stderr)
            code = 1
            continue
        try:
            done, left = repair(folder)
        except LockHeld:
            print(f"{arg}: the job's worker is running; stop it first", file=sys.stderr)
            code = 1
            continue
        for line in done:
            print(f"repaired {line}")
        for line in left:
            print(f"not repaired: {line}", file=sys.stderr)
        if not done and not left:
            print(f"{arg}: nothing to repair")
        code = code or (1 if left else 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
