"""The launcher: ``python -m rlft.workers.launcher <job folder> <lock fd>``.

A small process that starts the worker command from ``job.json``, waits for it, and records its
exit code. When the worker died without recording how it ended (killed, out of memory, a
crash in native code), the launcher records ``failed`` with the reason (the signal, and whether
the out-of-memory killer acted, from the kernel's counters: see ``_death``) and how to resume,
so a job's status always comes from what was recorded, never from a guess.

It imports no torch. The provider starts it in a new session, so a Ctrl-C or a crash of the
caller never reaches the job, and hands it the open, flock-held ``lock`` file: the launcher and
the worker inherit the lock, which the OS releases when the last of them exits. "Lock free and
no final state" is how the provider tells a dead job from a running one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlft.workers.death import explain_exit, read_counters
from rlft.workers.jobdir import ErrorRecord, JobDir, utcnow
from rlft.workers.records import resume_hint

__all__ = ["main"]

RECORDED = ("succeeded", "failed", "cancelled", "paused")


def _log_tail(folder: JobDir, lines: int = 3) -> str:
    try:
        text = folder.log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder, lock_fd = (
        JobDir(Path(args[0]), provider=args[2] if len(args) > 2 else "local"),
        int(args[1]),
    )
    if os.fork() > 0:
        # The provider waits for this first process only: it exits now, and the child carries
        # on as an orphan that init reaps, so the caller keeps no zombie and no Popen.
        os._exit(0)
    os.setsid()  # our own process group, which the provider's last-resort kill targets
    job = folder.read_job()
    # Our pid is also the process group of the worker (we lead a new session): the provider's
    # last-resort kill targets it. Written before the worker starts, so no write races.
    folder.update_state(pid=os.getpid(), exit_code=None, signal=None, oom_killed=None)
    before = read_counters()
    death = None
    try:
        worker = subprocess.Popen(job.command, pass_fds=(lock_fd,), stdin=subprocess.DEVNULL)
    except OSError as exc:
        code = None
        reason = f"could not start the worker {job.command[0]!r}: {exc}"
    else:
        code = worker.wait()
        death = explain_exit(code, before, read_counters())
        reason = f"the worker {death.message}, without recording how the job ended"
    state = folder.read_state()
    facts = {"signal": death.signal, "oom_killed": death.oom_killed} if death else {}
    if state.status in RECORDED:
        folder.update_state(exit_code=code, **facts)
        return 0
    tail = _log_tail(folder)
    message = f"{reason}; see {folder.log_file}" + (f" (last lines: {tail})" if tail else "")
    if death is not None:
        message += f"; {resume_hint(folder)}"
    # The event first: whoever sees the final state then finds every event.
    folder.append_event(
        kind="status",
        level="error",
        message=f"failed: {message}",
        raw={"status": "failed", "exit_code": code, **facts},
    )
    folder.update_state(
        status="failed",
        finished_at=utcnow(),
        exit_code=code,
        error=ErrorRecord(message=message, code="worker_died"),
        **facts,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
