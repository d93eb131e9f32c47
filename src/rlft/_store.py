"""The job store: every job rlft created or reattached, on any backend, in one SQLite file.

Lives at ``rlft_home() / "jobs.db"`` (``$RLFT_HOME`` or the user data dir) unless a ``Client`` is
given ``store=path``. SQLite in WAL mode with a busy timeout, so several processes (a CLI watching,
a notebook creating, CI) share it safely; the schema is versioned with ``PRAGMA user_version``
and migrated forward on open. Every call runs in a worker thread under a limiter of one, so the
event loop never blocks on disk.

What is stored: ids, names, labels, spec hash, idempotency key, neutral and raw status,
timestamps, the last event cursor, the events the watcher saw (neutral fields only) and dataset
upload ids. What is never stored: settings, credentials, request bodies or a backend's raw
payloads (``JobRecord.raw`` and ``JobEvent.raw`` are dropped), so a secret cannot leak into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from rlft._models import JobErrorInfo, JobEvent, JobRecord, JobStatus
from rlft._secrets import redacting
from rlft.exceptions import ConfigurationError, UsageError

if TYPE_CHECKING:
    from rlft.provider import Provider

__all__ = [
    "CREATING",
    "SCHEMA_VERSION",
    "JobStore",
    "StoreDamagedError",
    "StoredJob",
    "default_store_path",
    "scope_of",
]

T = TypeVar("T")

logger = logging.getLogger("rlft")

CREATING = "creating"
"""The status of a row whose remote create has not been confirmed yet."""

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction before giving up."""

# Each entry moves the schema one version up; never edit a released entry, append a new one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        local_id          TEXT PRIMARY KEY,
        provider          TEXT NOT NULL,
        scope             TEXT NOT NULL,
        provider_job_id   TEXT,
        name              TEXT,
        labels            TEXT NOT NULL DEFAULT '{}',
        spec_hash         TEXT,
        idempotency_key   TEXT,
        model             TEXT,
        status            TEXT NOT NULL,
        provider_status   TEXT,
        fine_tuned_model  TEXT,
        error             TEXT,
        remote_created_at TEXT,
        finished_at       TEXT,
        recorded_at       TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        event_cursor      TEXT,
        profile           TEXT,
        config_file       TEXT
    );
    CREATE UNIQUE INDEX jobs_remote ON jobs (provider, scope, provider_job_id)
        WHERE provider_job_id IS NOT NULL;
    CREATE INDEX jobs_key ON jobs (provider, scope, idempotency_key);
    CREATE INDEX jobs_status ON jobs (status);
    CREATE TABLE events (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        local_id  TEXT NOT NULL REFERENCES jobs (local_id) ON DELETE CASCADE,
        event_id  TEXT NOT NULL,
        body      TEXT NOT NULL,
        UNIQUE (local_id, event_id)
    );
    CREATE TABLE uploads (
        provider     TEXT NOT NULL,
        scope        TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        file_id      TEXT NOT NULL,
        uploaded_at  TEXT NOT NULL,
        PRIMARY KEY (provider, scope, content_hash)
    );
    """,
    # v2: a job counts as finished only once the events read after its end are stored. Jobs
    # that ended before this column existed are taken as they were.
    """
    ALTER TABLE jobs ADD COLUMN events_done INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET events_done = 1 WHERE status IN ('succeeded', 'failed', 'cancelled');
    """,
)
_TABLES = ("jobs", "events", "uploads")
SCHEMA_VERSION = len(_MIGRATIONS)


class StoreDamagedError(ConfigurationError):
    """The job store's file is damaged. The message names the file, what broke and the repair.

    Attributes:
        path: The database file.
        detail: What SQLite or the row decoder said.
    """

    def __init__(self, message: str = "", *, path: Path, detail: str) -> None:
        command = "rlft jobs doctor"
        if path != default_store_path():
            command += f" --store {path}"
        super().__init__(
            message
            or (
                f"the job store {path} is damaged ({detail}); run `{command}` to back it up "
                "and repair it, or move the file aside (a new store starts empty)"
            ),
            path=path,
            detail=detail,
        )


def scope_of(provider: Provider) -> str:
    """Which account or endpoint of a provider: a hash of its non-secret settings.

    Keys remembered uploads and create records in the store, so a file uploaded to one endpoint
    is never reused on another. Secret fields are left out, so nothing secret is hashed.
    """
    settings = provider.settings
    secret = set(getattr(type(settings), "secret_fields", ()))
    data = settings.model_dump(mode="json", exclude=secret)
    blob = json.dumps({"provider": provider.name, "settings": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_store_path() -> Path:
    """``rlft_home() / "jobs.db"``, read on every call (``RLFT_HOME`` may change)."""
    from rlft._paths import rlft_home

    return rlft_home() / "jobs.db"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, kw_only=True)
class StoredJob:
    """One row of the job store: what rlft knows about a job without asking its backend."""

    local_id: str
    """rlft's own id (``rlft-3f9a0c2b7d1e``); stable even before the backend answered."""
    provider: str
    scope: str
    """Which account/endpoint of the provider (a hash of its non-secret settings)."""
    provider_job_id: str | None
    """The backend's id; ``None`` while the create is unconfirmed (``status == "creating"``)."""
    name: str | None
    labels: dict[str, str] = field(default_factory=dict)
    spec_hash: str | None
    idempotency_key: str | None
    model: str | None
    status: str
    """A ``JobStatus`` value, or ``"creating"``."""
    provider_status: str | None
    fine_tuned_model: str | None
    error: JobErrorInfo | None
    remote_created_at: datetime | None
    finished_at: datetime | None
    recorded_at: datetime
    updated_at: datetime
    event_cursor: str | None
    """The id of the last event the watcher recorded: it resumes after it."""
    profile: str | None
    config_file: str | None
    """The ``rlft.toml`` the job was created under, so a reattach builds the same provider."""
    events_done: bool = False
    """True once the events read after the job ended are stored: only then is it settled."""

    @property
    def settled(self) -> bool:
        """Terminal, with its last events stored: nothing more to fetch for it."""
        status = self.job_status
        return status is not None and status.is_terminal and self.events_done

    @property
    def creating(self) -> bool:
        """True while the remote create is unconfirmed."""
        return self.status == CREATING or self.provider_job_id is None

    @property
    def job_status(self) -> JobStatus | None:
        """The neutral status, or ``None`` while creating."""
        return None if self.creating else JobStatus(self.status)

    def to_record(self) -> JobRecord:
        """The stored snapshot as a ``JobRecord`` (no network)."""
        if self.provider_job_id is None:
            raise UsageError(
                f"job {self.local_id} has no {self.provider} id yet: its create was never "
                "confirmed; run the same job again (the same spec reuses it) or "
                "`rlft jobs list --creating` to see it"
            )
        return JobRecord(
            id=self.provider_job_id,
            provider=self.provider,
            status=JobStatus(self.status),
            provider_status=self.provider_status or self.status,
            model=self.model,
            fine_tuned_model=self.fine_tuned_model,
            name=self.name,
            created_at=self.remote_created_at,
            finished_at=self.finished_at,
            error=self.error,
            metadata=dict(self.labels),
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``rlft jobs list --json``)."""
        return {
            "local_id": self.local_id,
            "provider": self.provider,
            "provider_job_id": self.provider_job_id,
            "name": self.name,
            "labels": dict(self.labels),
            "model": self.model,
            "status": self.status,
            "provider_status": self.provider_status,
            "fine_tuned_model": self.fine_tuned_model,
            "error": self.error.model_dump() if self.error else None,
            "created_at": _iso(self.remote_created_at),
            "finished_at": _iso(self.finished_at),
            "recorded_at": _iso(self.recorded_at),
            "updated_at": _iso(self.updated_at),
            "event_cursor": self.event_cursor,
            "settled": self.settled,
            "spec_hash": self.spec_hash,
            "idempotency_key": self.idempotency_key,
            "profile": self.profile,
        }


_COLUMNS = (
    "local_id, provider, scope, provider_job_id, name, labels, spec_hash, idempotency_key, model, "
    "status, provider_status, fine_tuned_model, error, remote_created_at, finished_at, "
    "recorded_at, updated_at, event_cursor, profile, config_file, events_done"
)


class _BadRow(Exception):
    """A row that does not decode: the store is damaged there."""

    def __init__(self, table: str, key: object, exc: BaseException) -> None:
        super().__init__(f"table {table}, row {key}: {type(exc).__name__}")
        self.table, self.key = table, key


def _row(row: sqlite3.Row | Mapping[str, Any]) -> StoredJob:
    try:
        job = _decode_row(row)
        if job.status != CREATING:
            JobStatus(job.status)  # a status word this rlft does not know is damage
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise _BadRow("jobs", _safe_key(row, "local_id"), exc) from exc
    return job


def _safe_key(row: sqlite3.Row | Mapping[str, Any], column: str) -> object:
    try:
        return row[column]
    except (IndexError, KeyError):  # pragma: no cover - the column itself is gone
        return "?"


def _decode_event(local_id: str, body: object) -> JobEvent:
    try:
        if not isinstance(body, str):
            raise TypeError("event body is not text")
        return JobEvent.model_validate_json(body)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise _BadRow("events", local_id, exc) from exc


def _decode_row(row: sqlite3.Row | Mapping[str, Any]) -> StoredJob:
    error = row["error"]
    labels = json.loads(row["labels"] or "{}")
    if not isinstance(labels, dict):
        raise TypeError("labels are not an object")
    return StoredJob(
        local_id=row["local_id"],
        provider=row["provider"],
        scope=row["scope"],
        provider_job_id=row["provider_job_id"],
        name=row["name"],
        labels=labels,
        spec_hash=row["spec_hash"],
        idempotency_key=row["idempotency_key"],
        model=row["model"],
        status=row["status"],
        provider_status=row["provider_status"],
        fine_tuned_model=row["fine_tuned_model"],
        error=JobErrorInfo.model_validate_json(error) if error else None,
        remote_created_at=_time(row["remote_created_at"]),
        finished_at=_time(row["finished_at"]),
        recorded_at=_time(row["recorded_at"]) or datetime.now(UTC),
        updated_at=_time(row["updated_at"]) or datetime.now(UTC),
        event_cursor=row["event_cursor"],
        profile=row["profile"],
        config_file=row["config_file"],
        events_done=bool(row["events_done"]),
    )


def _record_columns(record: JobRecord) -> dict[str, Any]:
    # Only neutral fields: `record.raw` is the backend's payload and is never written to disk.
    return {
        "provider_job_id": record.id,
        "status": record.status.value,
        "provider_status": record.provider_status,
        "fine_tuned_model": record.fine_tuned_model,
        "error": record.error.model_dump_json() if record.error else None,
        "remote_created_at": _iso(record.created_at),
        "finished_at": _iso(record.finished_at),
        "model": record.model,
    }


def _event_body(event: JobEvent) -> str:
    return event.model_dump_json(exclude={"raw"})


def new_local_id() -> str:
    """A fresh local job id: ``rlft-`` and 12 hex digits."""
    return f"rlft-{secrets.token_hex(6)}"


class JobStore:
    """The SQLite job store. Cheap to create: the file opens (and migrates) on first use.

    Args:
        path: The database file (default ``rlft_home() / "jobs.db"``). Its folder is created.
    """

    def __init__(self, *, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None
        self._loop: object = None

    def __repr__(self) -> str:
        return f"<rlft JobStore {str(self.path)!r}>"

    # --- plumbing -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot open the job store {self.path}: {exc}; set RLFT_HOME to a writable "
                "folder or pass Client(store=...)"
            ) from exc
        conn.row_factory = sqlite3.Row
        try:
            # WAL: readers never block the writer, and a killed process leaves a consistent file.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
            self._check_tables(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not _transient(exc):
                raise self._damaged(exc) from exc
            raise
        self._conn = conn
        return conn

    def _check_tables(self, conn: sqlite3.Connection) -> None:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        missing = [table for table in _TABLES if table not in names]
        if missing:
            raise StoreDamagedError(path=self.path, detail=f"table {missing[0]} is missing")

    def _damaged(self, exc: BaseException) -> StoreDamagedError:
        return StoreDamagedError(path=self.path, detail=" ".join(str(exc).split()))

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the job store {self.path} has schema v{version}, newer than this rlft "
                f"understands (v{SCHEMA_VERSION}); upgrade rlft, or point RLFT_HOME elsewhere"
            )
        # IMMEDIATE takes the write lock first, so two processes never migrate at once; the
        # version is read again inside the transaction in case the other one just did it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock, self._guard():
            return fn(self._connect())

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock, self._guard():
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no read-to-write upgrade
            try:
                result = fn(redacting(conn))  # no registered secret is ever written
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Damage (a broken file, a missing table, a row that does not decode) as one error."""
        try:
            yield
        except _BadRow as exc:
            raise self._damaged(exc) from None
        except sqlite3.DatabaseError as exc:
            if _transient(exc):
                raise ConfigurationError(
                    f"the job store {self.path} cannot be used now: {exc}; another rlft process "
                    "may hold it (wait for it), or the folder is not writable (set RLFT_HOME)"
                ) from exc
            raise self._damaged(exc) from exc

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = anyio.lowlevel.current_token().native_token
        if self._limiter is None or self._loop is not loop:
            self._limiter, self._loop = anyio.CapacityLimiter(1), loop
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    def close(self) -> None:
        """Close the connection. Idempotent; the store reopens on next use."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        """Close the connection (async spelling). Idempotent."""
        await self._run(self.close)

    # --- create reservations ------------------------------------------------------------------

    @asynccontextmanager
    async def reserve(
        self, *, provider: str, scope: str, idempotency_key: str
    ) -> AsyncIterator[None]:
        """Hold the create reservation of one idempotency key, across processes.

        While one process (or task) holds it, another creating the same key waits, then finds
        the first one's job in the store instead of creating a second one: this is what keeps
        a backend that ignores idempotency keys from running two paid jobs. The reservation is
        an exclusive ``flock`` on a file in ``<store folder>/locks``, so a holder killed at any
        moment releases it (the OS drops the lock with the process) and the next one reclaims
        it. Where ``flock`` does not exist (Windows) there is no reservation.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: creates rely on the backend's keys
            yield
            return
        digest = hashlib.sha256(f"{provider}\0{scope}\0{idempotency_key}".encode()).hexdigest()
        folder = self.path.parent / "locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = (folder / f"create-{digest[:32]}.lock").open("a")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot reserve a create in {folder}: {exc}; set RLFT_HOME to a writable "
                "folder or pass Client(store=...)"
            ) from exc
        with handle:
            delay, told = 0.01, False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        logger.info(
                            "waiting: another process is creating the same %s job (key %s)",
                            provider,
                            idempotency_key[:12],
                        )
                        told = True
                    await anyio.sleep(delay)  # a remote create takes seconds: poll gently
                    delay = min(delay * 2, 0.5)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- jobs ---------------------------------------------------------------------------------

    async def begin_create(
        self,
        *,
        provider: str,
        scope: str,
        idempotency_key: str,
        spec_hash: str | None,
        name: str | None,
        labels: Mapping[str, str],
        model: str | None,
        profile: str | None = None,
        config_file: str | None = None,
    ) -> StoredJob:
        """Record a create before the remote call; or return the row of an earlier attempt.

        An earlier row with the same provider, scope and key is returned as is, so a create
        retried after a crash carries the same key and the backend returns the first job.
        """

        def run(conn: sqlite3.Connection) -> StoredJob:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE provider=? AND scope=? AND idempotency_key=? "
                "ORDER BY recorded_at DESC LIMIT 1",
                (provider, scope, idempotency_key),
            ).fetchone()
            if found is not None:
                return _row(found)
            now = _now()
            local_id = new_local_id()
            conn.execute(
                "INSERT INTO jobs (local_id, provider, scope, name, labels, spec_hash, "
                "idempotency_key, model, status, recorded_at, updated_at, profile, config_file) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    local_id,
                    provider,
                    scope,
                    name,
                    json.dumps(dict(labels), sort_keys=True),
                    spec_hash,
                    idempotency_key,
                    model,
                    CREATING,
                    now,
                    now,
                    profile,
                    config_file,
                ),
            )
            return _row(_select(conn, local_id))

        return await self._run(lambda: self._write(run))

    async def find_create(
        self, *, provider: str, scope: str, idempotency_key: str
    ) -> StoredJob | None:
        """The latest row created with this provider endpoint and key, if any."""

        def run(conn: sqlite3.Connection) -> StoredJob | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE provider=? AND scope=? AND idempotency_key=? "
                "ORDER BY recorded_at DESC LIMIT 1",
                (provider, scope, idempotency_key),
            ).fetchone()
            return _row(found) if found is not None else None

        return await self._run(lambda: self._read(run))

    async def finish_create(self, local_id: str, record: JobRecord) -> StoredJob:
        """Attach the backend's answer to a ``begin_create`` row.

        If the row already names a different remote job (the backend forgot the first one, as
        an in-memory fake does), a new row is recorded instead, so no job disappears.
        """

        def run(conn: sqlite3.Connection) -> StoredJob:
            row = _row(_select(conn, local_id))
            existing = conn.execute(
                "SELECT local_id FROM jobs WHERE provider=? AND scope=? AND provider_job_id=?",
                (row.provider, row.scope, record.id),
            ).fetchone()
            if existing is not None and existing["local_id"] != local_id:
                if row.provider_job_id is None:  # another process finished it first
                    conn.execute("DELETE FROM jobs WHERE local_id=?", (local_id,))
                target = existing["local_id"]
            elif row.provider_job_id not in (None, record.id):
                target = new_local_id()
                conn.execute(
                    f"INSERT INTO jobs ({_COLUMNS}) SELECT ?, provider, scope, NULL, name, "
                    "labels, spec_hash, idempotency_key, model, status, NULL, NULL, NULL, NULL, "
                    "NULL, ?, ?, NULL, profile, config_file, 0 FROM jobs WHERE local_id=?",
                    (target, _now(), _now(), local_id),
                )
            else:
                target = local_id
            _update(conn, target, record)
            return _row(_select(conn, target))

        return await self._run(lambda: self._write(run))

    async def abandon_create(self, local_id: str) -> None:
        """Forget a ``creating`` row whose create certainly never landed (refused as invalid)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM jobs WHERE local_id=? AND provider_job_id IS NULL", (local_id,)
            )

        await self._run(lambda: self._write(run))

    async def adopt(
        self,
        record: JobRecord,
        *,
        scope: str,
        profile: str | None = None,
        config_file: str | None = None,
    ) -> StoredJob:
        """Record a job rlft did not create (reattached by its backend id); update it if known."""
        (adopted,) = await self.adopt_many(
            [record], scope=scope, profile=profile, config_file=config_file
        )
        return adopted

    async def adopt_many(
        self,
        records: Sequence[JobRecord],
        *,
        scope: str,
        profile: str | None = None,
        config_file: str | None = None,
    ) -> list[StoredJob]:
        """``adopt`` for many jobs of one provider endpoint, in one transaction."""

        def run(conn: sqlite3.Connection) -> list[StoredJob]:
            adopted = []
            for record in records:
                found = conn.execute(
                    "SELECT local_id FROM jobs WHERE provider=? AND scope=? AND provider_job_id=?",
                    (record.provider, scope, record.id),
                ).fetchone()
                if found is not None:
                    local_id = found["local_id"]
                else:
                    now = _now()
                    local_id = new_local_id()
                    # rlft's own bookkeeping keys (the idempotency tag) are not labels.
                    labels = {k: v for k, v in record.metadata.items() if not k.startswith("rlft_")}
                    conn.execute(
                        "INSERT INTO jobs (local_id, provider, scope, name, labels, status, "
                        "recorded_at, updated_at, profile, config_file) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            local_id,
                            record.provider,
                            scope,
                            record.name,
                            json.dumps(labels, sort_keys=True),
                            record.status.value,
                            now,
                            now,
                            profile,
                            config_file,
                        ),
                    )
                _update(conn, local_id, record)
                adopted.append(_row(_select(conn, local_id)))
            return adopted

        return await self._run(lambda: self._write(run))

    async def get_many(self, local_ids: Sequence[str]) -> dict[str, StoredJob]:
        """The rows with these local ids, by local id (unknown ids are left out)."""

        def run(conn: sqlite3.Connection) -> dict[str, StoredJob]:
            found: dict[str, StoredJob] = {}
            for start in range(0, len(local_ids), 500):  # SQLite caps bound parameters
                chunk = list(local_ids[start : start + 500])
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE local_id IN ({marks})", chunk
                ).fetchall()
                found.update((row["local_id"], _row(row)) for row in rows)
            return found

        return await self._run(lambda: self._read(run))

    async def update(self, local_id: str, record: JobRecord) -> None:
        """Save a fresh snapshot of one job."""
        await self.update_many([(local_id, record)])

    async def update_many(self, updates: Sequence[tuple[str, JobRecord]]) -> None:
        """Save fresh snapshots of many jobs in one transaction (one poll of a provider)."""
        if not updates:
            return

        def run(conn: sqlite3.Connection) -> None:
            for local_id, record in updates:
                _update(conn, local_id, record)

        await self._run(lambda: self._write(run))

    async def get(self, local_id: str) -> StoredJob | None:
        """The row with this local id, or ``None``."""

        def run(conn: sqlite3.Connection) -> StoredJob | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE local_id=?", (local_id,)
            ).fetchone()
            return _row(found) if found is not None else None

        return await self._run(lambda: self._read(run))

    async def find(self, job_id: str, *, provider: str | None = None) -> StoredJob | None:
        """Find a job by local id, backend id, or a unique prefix (6+ chars) of a local id.

        Raises:
            UsageError: The id matches several jobs; the message lists them.
        """

        def run(conn: sqlite3.Connection) -> StoredJob | None:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE local_id=? OR provider_job_id=?",
                (job_id, job_id),
            ).fetchall()
            if not rows and len(job_id) >= 6:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE local_id LIKE ? ESCAPE '\\'",
                    (job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
                ).fetchall()
            found = [_row(r) for r in rows]
            if provider is not None:
                found = [job for job in found if job.provider == provider]
            if len(found) > 1:
                listed = ", ".join(f"{job.local_id} ({job.provider})" for job in found)
                raise UsageError(f"{job_id!r} matches {len(found)} jobs: {listed}; use a local id")
            return found[0] if found else None

        return await self._run(lambda: self._read(run))

    async def jobs(
        self,
        *,
        provider: str | None = None,
        status: Iterable[str] | str | None = None,
        labels: Mapping[str, str] | None = None,
        active: bool | None = None,
        settled: bool | None = None,
        limit: int | None = None,
    ) -> list[StoredJob]:
        """Jobs in the store, newest first.

        Args:
            provider: Only this provider's jobs.
            status: Only these statuses (``JobStatus`` values or ``"creating"``).
            labels: Only jobs carrying every one of these labels.
            active: ``True``: only jobs that are not terminal; ``False``: only terminal ones.
            settled: ``False``: jobs not terminal, or terminal with their last events not yet
                stored (what a watcher still has to read); ``True``: the others.
            limit: At most this many.
        """
        terminal = [s.value for s in JobStatus if s.is_terminal]
        clauses: list[str] = []
        params: list[Any] = []
        if provider is not None:
            clauses.append("provider=?")
            params.append(provider)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({', '.join('?' for _ in wanted)})")
            params.extend(str(s) for s in wanted)
        if active is not None:
            marks = ", ".join("?" for _ in terminal)
            clauses.append(f"status {'NOT IN' if active else 'IN'} ({marks})")
            params.extend(terminal)
        if settled is not None:
            marks = ", ".join("?" for _ in terminal)
            done = f"(status IN ({marks}) AND events_done = 1)"
            clauses.append(done if settled else f"NOT {done}")
            params.extend(terminal)
        for key, value in (labels or {}).items():
            # In SQL, so a server with many jobs reads only the matching rows; json_each takes
            # any key as it is (no JSON-path quoting), and json_valid skips a damaged row.
            clauses.append(
                "json_valid(labels) AND EXISTS (SELECT 1 FROM json_each(jobs.labels) "
                "WHERE json_each.key = ? AND json_each.type = 'text' AND json_each.value = ?)"
            )
            params.extend((str(key), str(value)))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        bound = " LIMIT ?" if limit is not None else ""

        def run(conn: sqlite3.Connection) -> list[StoredJob]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY recorded_at DESC, rowid DESC{bound}",
                [*params, limit] if limit is not None else params,
            ).fetchall()
            return [_row(r) for r in rows]

        return await self._run(lambda: self._read(run))

    # --- events -------------------------------------------------------------------------------

    async def record_events(
        self, local_id: str, events: Sequence[JobEvent], *, final: bool = False
    ) -> list[int]:
        """Append events to a job's log and move its cursor past them, in one transaction.

        Either every event and the cursor are saved or none is: a watcher killed at any moment
        resumes from a cursor that matches its log exactly. An event already in the log (a
        backend that served it twice) is skipped.

        Args:
            local_id: The job.
            events: The new events, oldest first (may be empty when ``final``).
            final: These are the events read after the job was seen terminal: with them stored
                the job is settled, and a default ``rlft jobs watch`` no longer picks it up.

        Returns:
            The log sequence number of each newly recorded event (skipped ones omitted).
        """
        if not events and not final:
            return []

        def run(conn: sqlite3.Connection) -> list[int]:
            seqs: list[int] = []
            for event in events:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO events (local_id, event_id, body) VALUES (?, ?, ?)",
                    (local_id, event.id, _event_body(event)),
                )
                if cursor.rowcount:
                    seqs.append(int(cursor.lastrowid or 0))
            if events:
                conn.execute(
                    "UPDATE jobs SET event_cursor=?, updated_at=? WHERE local_id=?",
                    (events[-1].id, _now(), local_id),
                )
            if final:
                conn.execute("UPDATE jobs SET events_done=1 WHERE local_id=?", (local_id,))
            return seqs

        return await self._run(lambda: self._write(run))

    async def events(self, local_id: str, *, after: str | None = None) -> list[JobEvent]:
        """The recorded events of a job, oldest first; ``after`` an event id to start after.

        An ``after`` that is not in the log returns the whole log.
        """

        def run(conn: sqlite3.Connection) -> list[JobEvent]:
            start = 0
            if after is not None:
                found = conn.execute(
                    "SELECT seq FROM events WHERE local_id=? AND event_id=?", (local_id, after)
                ).fetchone()
                start = found["seq"] if found is not None else 0
            rows = conn.execute(
                "SELECT body FROM events WHERE local_id=? AND seq>? ORDER BY seq",
                (local_id, start),
            ).fetchall()
            return [_decode_event(local_id, row["body"]) for row in rows]

        return await self._run(lambda: self._read(run))

    # --- uploads ------------------------------------------------------------------------------

    async def upload_id(self, *, provider: str, scope: str, content_hash: str) -> str | None:
        """The file id a dataset with this content hash was uploaded as, if any."""

        def run(conn: sqlite3.Connection) -> str | None:
            found = conn.execute(
                "SELECT file_id FROM uploads WHERE provider=? AND scope=? AND content_hash=?",
                (provider, scope, content_hash),
            ).fetchone()
            return str(found["file_id"]) if found is not None else None

        return await self._run(lambda: self._read(run))

    async def remember_upload(
        self, *, provider: str, scope: str, content_hash: str, file_id: str
    ) -> None:
        """Remember an upload, so no process uploads the same content twice."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO uploads (provider, scope, content_hash, file_id, "
                "uploaded_at) VALUES (?, ?, ?, ?, ?)",
                (provider, scope, content_hash, file_id, _now()),
            )

        await self._run(lambda: self._write(run))

    async def forget_upload(self, *, provider: str, scope: str, content_hash: str) -> None:
        """Forget a remembered upload (the backend deleted the file)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM uploads WHERE provider=? AND scope=? AND content_hash=?",
                (provider, scope, content_hash),
            )

        await self._run(lambda: self._write(run))

    async def job_dir(self, local_id: str) -> Path:
        """A folder beside the store for a job's files (its reward curve), created on demand."""
        folder = self.path.parent / "jobs" / local_id
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        return folder


def _transient(exc: sqlite3.DatabaseError) -> bool:
    """Busy (another process's lock) or not writable: a problem of now, not of the file."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "readonly", "unable to open")
    )


def _select(conn: sqlite3.Connection, local_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE local_id=?", (local_id,)
    ).fetchone()
    if row is None:
        raise UsageError(f"no job {local_id!r} in the job store")
    return row


def _update(conn: sqlite3.Connection, local_id: str, record: JobRecord) -> None:
    columns = _record_columns(record)
    if columns["model"] is None:
        del columns["model"]  # keep the model the create recorded
    assignments = ", ".join(f"{name}=?" for name in columns)
    conn.execute(
        f"UPDATE jobs SET {assignments}, updated_at=? WHERE local_id=?",
        (*columns.values(), _now(), local_id),
    )
