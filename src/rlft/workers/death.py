"""Why a worker died, from evidence only: its exit status and the kernel's OOM-kill counters.

The out-of-memory killer always sends SIGKILL, but so can a user, a supervisor or grader code
that kills its parent: "killed by SIGKILL" alone does not say which. The kernel counts OOM kills
per memory cgroup (cgroup v2 ``memory.events``, v1 ``memory.oom_control``: the victim's cgroup
counts a kill whatever triggered it) and for the whole machine (``/proc/vmstat``). The launcher
reads them before starting the worker and after it died, and reports only what the change shows.
No ``dmesg`` (it needs privileges and is often empty in containers). Standard library only.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Death", "OomCounters", "booted_at", "explain_exit", "explain_lost", "read_counters"]


@dataclass(frozen=True)
class OomCounters:
    """OOM-kill counts at one moment; ``None`` where the counter can't be read here."""

    cgroup_file: str | None = None
    cgroup: int | None = None
    system: int | None = None


@dataclass(frozen=True)
class Death:
    """How the worker ended, in words and as data."""

    message: str
    signal: str | None = None
    oom_killed: bool | None = None
    """True: the OOM killer acted in the worker's cgroup while it ran. False: the counters show
    it did not (or the signal was not SIGKILL, the only one it sends). None: no evidence."""


def _field(path: Path, name: str) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value.strip())
    return None


def _cgroup_counter(proc: Path, cgroup_root: Path) -> tuple[str, int] | None:
    """This process's memory cgroup OOM-kill count, from cgroup v2 or v1."""
    try:
        lines = (proc / "self" / "cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    candidates: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        relative = path.strip().lstrip("/")
        if controllers == "":  # v2: the unified hierarchy
            for root in (cgroup_root, cgroup_root / "unified"):
                candidates.append(root / relative / "memory.events")
        elif "memory" in controllers.split(","):
            candidates.append(cgroup_root / "memory" / relative / "memory.oom_control")
    for candidate in candidates:
        count = _field(candidate, "oom_kill")
        if count is not None:
            return str(candidate), count
    return None


def read_counters(
    proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> OomCounters:
    """Read the OOM-kill counters this process can see (the paths are for tests)."""
    found = _cgroup_counter(proc, cgroup_root)
    return OomCounters(
        cgroup_file=found[0] if found else None,
        cgroup=found[1] if found else None,
        system=_field(proc / "vmstat", "oom_kill"),
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def explain_exit(code: int, before: OomCounters, after: OomCounters) -> Death:
    """Describe an exit from ``Popen.returncode`` and the counters around the worker's life."""
    if code >= 0:
        return Death(message=f"exited with code {code}", oom_killed=False)
    name = _signal_name(-code)
    killed = f"was killed by {name}"
    if -code != signal.SIGKILL:
        return Death(message=killed, signal=name, oom_killed=False)
    cg_before, cg_after = before.cgroup, after.cgroup
    if before.cgroup_file != after.cgroup_file:
        cg_before = cg_after = None
    if cg_before is not None and cg_after is not None and cg_after > cg_before:
        return Death(
            message=f"{killed}: the out-of-memory killer acted in its cgroup while it ran "
            f"(oom_kill {cg_before} -> {cg_after} in {after.cgroup_file})",
            signal=name,
            oom_killed=True,
        )
    sys_before, sys_after = before.system, after.system
    if sys_before is not None and sys_after == sys_before:
        return Death(
            message=f"{killed}, not by the out-of-memory killer (the machine's oom_kill count "
            f"in /proc/vmstat stayed at {sys_after}): something else sent it",
            signal=name,
            oom_killed=False,
        )
    if cg_before is not None and cg_after is not None:
        return Death(
            message=f"{killed}, not by the out-of-memory killer (oom_kill stayed at "
            f"{cg_after} in {after.cgroup_file}): something else sent it",
            signal=name,
            oom_killed=False,
        )
    if sys_before is not None and sys_after is not None:
        return Death(
            message=f"{killed}; the out-of-memory killer killed {sys_after - sys_before} "
            "process(es) on this machine while it ran (/proc/vmstat), perhaps this worker: no "
            "cgroup counter here tells which",
            signal=name,
        )
    return Death(
        message=f"{killed}; whether by the out-of-memory killer is unknown (no /proc/vmstat "
        "or cgroup OOM counter here)",
        signal=name,
    )


def booted_at(proc: Path = Path("/proc")) -> datetime | None:
    """When this machine booted (``btime`` in ``/proc/stat``), or ``None`` where unknown."""
    try:
        text = (proc / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "btime" and value.strip().isdigit():
            return datetime.fromtimestamp(int(value), UTC)
    return None


def explain_lost(last_record: datetime, booted: datetime | None) -> str:
    """Why a worker and its launcher both vanished, from the boot time and the last record."""
    if booted is None:
        return "killed, or the machine restarted: the boot time is unknown here"
    if booted > last_record:
        return (
            f"the machine restarted (it booted at {booted:%Y-%m-%d %H:%M:%S} UTC, after the "
            f"job's last record at {last_record:%Y-%m-%d %H:%M:%S} UTC)"
        )
    return "both were killed: the machine did not restart since the job's last record"
