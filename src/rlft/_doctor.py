"""``rlft jobs doctor``: check the job store, repair what can be repaired, back up the rest.

A repair never edits the damaged file in place. It copies the file (and its WAL) next to itself
first, reads every row it still can into a fresh store, sets aside the rows that do not decode in
a quarantine file (JSON lines), and only then swaps the fresh store in. What could not be read at
all stays in the backup. Run it while no other rlft process uses the store.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rlft._models import JobStatus
from rlft._store import (
    _MIGRATIONS,
    _TABLES,
    SCHEMA_VERSION,
    _BadRow,
    _decode_event,
    _row,
)

__all__ = ["DoctorReport", "doctor"]

_TERMINAL = tuple(status.value for status in JobStatus if status.is_terminal)


@dataclass
class DoctorReport:
    """What ``doctor`` found and did.

    Attributes:
        path: The store's file.
        problems: What is wrong, one line each (empty: healthy).
        actions: What was done about it, one line each.
        counts: Rows per table in the store after the check (or the repair).
        repaired: True when a fresh store replaced the damaged one.
        backup: Where the original file was copied, when it was.
        quarantine: Where undecodable rows were set aside, when there were any.
        ok: False when something is wrong that doctor cannot fix (a newer schema).
    """

    path: Path
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    repaired: bool = False
    backup: Path | None = None
    quarantine: Path | None = None
    ok: bool = True

    def lines(self) -> list[str]:
        """The report as lines for a terminal."""
        out = [f"job store: {self.path}"]
        if not self.problems:
            counted = ", ".join(f"{n} {table}" for table, n in self.counts.items())
            out += self.actions or [f"ok: {counted or 'empty'}; nothing to repair"]
            return out
        out += [f"problem: {line}" for line in self.problems]
        out += [f"did: {line}" for line in self.actions]
        if self.repaired:
            counted = ", ".join(f"{n} {table}" for table, n in self.counts.items())
            out.append(f"repaired: the store now holds {counted}")
        return out

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``rlft jobs doctor --json``)."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "problems": self.problems,
            "actions": self.actions,
            "counts": self.counts,
            "repaired": self.repaired,
            "backup": str(self.backup) if self.backup else None,
            "quarantine": str(self.quarantine) if self.quarantine else None,
        }


def doctor(path: Path, *, repair: bool = True) -> DoctorReport:
    """Check the store at ``path``; with ``repair``, rebuild it when it is damaged.

    Synchronous (it is a maintenance command); run it in a thread from async code.
    """
    report = DoctorReport(path=path)
    if not path.exists():
        report.actions.append("no store here yet: nothing to check")
        return report
    salvage = _Salvage()
    padded = _pad_if_truncated(path, report)
    try:
        version = _inspect(padded or path, report, salvage, quick=padded is None)
    finally:
        if padded is not None:
            padded.unlink(missing_ok=True)
    if version is not None and version > SCHEMA_VERSION:
        report.ok = False
        report.problems.append(
            f"schema v{version} is newer than this rlft understands (v{SCHEMA_VERSION})"
        )
        report.actions.append("nothing changed: upgrade rlft to use or repair this store")
        return report
    if not report.problems:
        report.counts = {table: len(salvage.rows[table]) for table in _TABLES}
        return report
    if not repair:
        report.actions.append("nothing changed (check only): run without --check to repair")
        return report
    _rebuild(path, report, salvage)
    return report


@dataclass
class _Salvage:
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {table: [] for table in _TABLES}
    )
    bad: list[dict[str, Any]] = field(default_factory=list)
    events_lost: bool = False
    """Some events could not be kept: the watcher is sent back to fetch them again."""


def _pad_if_truncated(path: Path, report: DoctorReport) -> Path | None:
    """A copy of a truncated file padded to its declared size, so the pages left can be read.

    SQLite refuses a file shorter than its header says, even for the rows on pages that are
    still there; zero pages in place of the lost ones let it read the rest.
    """
    with path.open("rb") as file:
        data = file.read()
    if len(data) < 100 or not data.startswith(b"SQLite format 3\0"):
        return None
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    declared = int.from_bytes(data[28:32], "big") * page_size
    if page_size < 512 or len(data) >= declared:
        return None
    report.problems.append(f"the file is truncated: {len(data)} of {declared} bytes are left")
    padded = path.with_name(f"{path.name}.salvage")
    padded.write_bytes(data + bytes(declared - len(data)))
    return padded


def _inspect(path: Path, report: DoctorReport, salvage: _Salvage, *, quick: bool) -> int | None:
    """Read every row that can be read; note each problem. Returns the schema version."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.problems.append(f"the file cannot be opened: {_one_line(exc)}")
        return None
    conn.row_factory = sqlite3.Row
    try:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"the file is not a readable SQLite database: {_one_line(exc)}")
            return None
        if version > SCHEMA_VERSION:
            return version
        try:
            checks = [row[0] for row in conn.execute("PRAGMA quick_check")] if quick else ["ok"]
        except sqlite3.DatabaseError as exc:
            checks = [_one_line(exc)]
        if checks != ["ok"]:
            report.problems.append(f"SQLite's integrity check failed: {'; '.join(checks[:3])}")
        for table in _TABLES:
            if table not in names:
                if version > 0:
                    report.problems.append(f"table {table} is missing")
                    salvage.events_lost |= table == "events"
                continue
            _read_table(conn, table, report, salvage)
        return version
    finally:
        conn.close()


def _read_table(
    conn: sqlite3.Connection, table: str, report: DoctorReport, salvage: _Salvage
) -> None:
    known_jobs = {row["local_id"] for row in salvage.rows["jobs"]}
    try:
        for row in _rows(conn, table):
            problem = _check_row(table, row, known_jobs)
            if problem is None:
                salvage.rows[table].append(dict(row))
            else:
                salvage.bad.append({"table": table, "problem": problem, "row": _jsonable(row)})
    except sqlite3.DatabaseError as exc:
        report.problems.append(
            f"table {table} could be read only up to row {len(salvage.rows[table])}: "
            f"{_one_line(exc)}"
        )
        salvage.events_lost |= table == "events"
    bad = sum(1 for entry in salvage.bad if entry["table"] == table)
    if bad:
        report.problems.append(f"{bad} row(s) of table {table} do not decode")
        salvage.events_lost |= table == "events"


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[sqlite3.Row]:
    order = "seq" if table == "events" else "rowid"
    yield from conn.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 - fixed names


def _check_row(table: str, row: sqlite3.Row, known_jobs: set[str]) -> str | None:
    columns = dict(row)
    try:
        if table == "jobs":
            columns.setdefault("events_done", int(columns.get("status") in _TERMINAL))
            _row(columns)
        elif table == "events":
            if columns.get("local_id") not in known_jobs:
                return "its job is not in the store"
            _decode_event(str(columns.get("local_id")), columns.get("body"))
        elif not all(isinstance(columns.get(key), str) for key in ("provider", "file_id")):
            return "missing provider or file id"
    except _BadRow as exc:
        return str(exc.__cause__ or exc)
    return None


def _jsonable(row: sqlite3.Row) -> dict[str, Any]:
    return {
        key: value if isinstance(value, str | int | float | None) else repr(value)
        for key, value in dict(row).items()
    }


def _rebuild(path: Path, report: DoctorReport, salvage: _Salvage) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            shutil.copy2(source, Path(f"{backup}{suffix}"))
    report.backup = backup
    report.actions.append(f"backed up the original to {backup}")
    if salvage.bad:
        quarantine = path.with_name(f"{path.name}.{stamp}.quarantine.jsonl")
        with quarantine.open("w", encoding="utf-8") as out:
            for entry in salvage.bad:
                out.write(json.dumps(entry, sort_keys=True) + "\n")
        report.quarantine = quarantine
        report.actions.append(f"set {len(salvage.bad)} undecodable row(s) aside in {quarantine}")

    if salvage.events_lost:
        _refetch_events(salvage, report)
    fresh = path.with_name(f"{path.name}.{stamp}.rebuild")
    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for migration in _MIGRATIONS:
            for statement in migration.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        schema = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in _TABLES
        }
        for table in _TABLES:
            for row in salvage.rows[table]:
                names = [name for name in schema[table] if name in row]
                marks = ", ".join("?" for _ in names)
                conn.execute(
                    f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({marks})",  # noqa: S608
                    [row[name] for name in names],
                )
        conn.execute("COMMIT")
        report.counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in _TABLES
        }
    finally:
        conn.close()
    # The old WAL belongs to the old file: replayed onto the fresh one it would corrupt it.
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(fresh, path)
    report.repaired = True
    read = sum(len(rows) for rows in salvage.rows.values())
    report.actions.append(
        f"rebuilt the store from the {read} row(s) that could be read"
        if read
        else "nothing could be read: started an empty store (the backup keeps the old file)"
    )


def _refetch_events(salvage: _Salvage, report: DoctorReport) -> None:
    """Point each job's cursor at its last kept event and mark it unsettled: the backend still
    has the lost events, and the next ``rlft jobs watch`` stores them again (no duplicates)."""
    # A job's log must stay a prefix of its backend's events: keep what precedes its first
    # undecodable event, and let the watcher fetch the rest again.
    first_bad: dict[str, int] = {}
    for entry in salvage.bad:
        row = entry["row"]
        if entry["table"] == "events" and isinstance(row.get("seq"), int):
            job = str(row.get("local_id"))
            first_bad[job] = min(first_bad.get(job, row["seq"]), row["seq"])
    kept, last = [], {}
    for event in salvage.rows["events"]:
        job = str(event["local_id"])
        if job in first_bad and int(event["seq"]) > first_bad[job]:
            continue
        kept.append(event)
        last[job] = str(event["event_id"])
    salvage.rows["events"] = kept
    jobs = [row for row in salvage.rows["jobs"] if row.get("provider_job_id")]
    for row in jobs:
        row["event_cursor"] = last.get(str(row["local_id"]))
        row["events_done"] = 0
    if jobs:
        report.actions.append(
            f"marked {len(jobs)} job(s) to fetch their lost events again: run `rlft jobs watch`"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
