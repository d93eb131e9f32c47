"""Run user-written Python graders, ``def grade(sample, item) -> float``, in jailed processes.

``SandboxPool`` keeps worker processes (``python -I worker.py``, started with ``subprocess``) and
reuses them. A worker serves exactly one grader (one SHA-256 of source) for its whole life, so
graders never share a process, modules or globals; a grader's own module-level state persists
between its calls in its worker. At most ``workers`` workers grade at once; up to
``2 * workers`` stay alive, the least recently used idle one is killed when another grader needs
a slot. ``run()`` grades one sample; ``run_batch()`` (async) and ``run_batch_sync()`` /
``run_batch_rows()`` (blocking, for TRL's thread) grade many in one round trip per worker. Calls
may come from any thread and any event loop.

Isolation (``isolation=``, default ``$RLFT_GRADER_ISOLATION`` or ``"auto"``; docs/security.md):
on Linux with bubblewrap, user namespaces and libseccomp, every worker runs in a jail
(``jail.py``): new user, PID, network, mount, IPC, UTS and cgroup namespaces, uid 65534 with no
capabilities, a read-only view of only the system and Python directories, a private size-capped
``/tmp`` as its home, no network at all, a seccomp filter under which no process can be started
(threads can) and the usual escape routes fail, and death with its parent. ``"required"`` refuses
to run graders where the jail is unavailable; ``"auto"`` then warns once
(``SandboxIsolationWarning`` and a log line) and runs plain processes; ``"off"`` never jails. A
plain process still gets a clean environment (only ``PATH``, ``LANG``, ``LC_ALL``, ``LC_CTYPE``,
``TZ`` and ``NLTK_DATA`` pass through), a fresh temporary home, Python's isolated mode, a new
session and best-effort network denial (``socket.socket`` and DNS raise), but it can read the
user's files, start processes and reach the network through them: it contains accidents, not
hostile code.

Limits (``SandboxLimits``; the defaults mirror OpenAI's hosted python grader)

- ``timeout_s``, 120 s per sample (OpenAI: 2 min). The parent's deadline, moved on as a batch
  starts each row (a shared progress cell says which); the worker is killed and replaced, the
  row scores ``"timeout"`` and the batch's other rows are graded again on a fresh worker.
- ``memory_mb``, 2048 MB per worker (OpenAI: 2 GB). ``RLIMIT_AS`` (address space, not RSS), set
  by the worker on itself; in the jail no process can be forked to multiply it. ``"memory"``.
- ``disk_mb``, 1024 MiB: the jail's ``/tmp`` (a tmpfs, so it counts as memory).
- ``max_source_bytes``, 256,000 bytes of UTF-8 (OpenAI: code < 256 kB). ``check_source`` at build
  time and ``run()``. Exceeded: ``GraderValidationError``, or ``"syntax"`` from ``run()``.
- ``max_output_bytes``, 64,000 bytes per call. The first bytes of stdout + stderr are kept; the
  rest is dropped with a one-line note. Never fatal. In a batch the output comes with the
  first row of each worker's share.

Fixed backstops: a CPU-time limit (``RLIMIT_CPU``, the timeout times the core count per row plus
5 s, re-armed per call) that only matters if the parent dies mid-call; a watchdog thread and
bubblewrap's ``--die-with-parent`` end the worker when its parent dies; no core files; at most
1 GiB per written file; ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``. POSIX only
(Linux, macOS; macOS does not enforce ``RLIMIT_AS`` and has no jail).

A process that forks (``multiprocessing`` with ``fork``) gets fresh pools in the child; the
parent's workers stay the parent's.

Scoring (fail closed: every failure scores 0.0, with the reason in ``error``), by ``error_kind``:

- ``None``: ``grade`` returned a finite real number (``int``, ``float``, numpy scalars).
- ``"invalid_return"``: ``None``, a ``bool`` (refused on purpose: hosted graders want a number and
  ``float(...)`` is portable), a string, NaN, infinity, or anything else.
- ``"exception"``: ``grade`` or the module raised, ``RecursionError`` included (traceback tail).
- ``"memory"``: ``MemoryError``, or the worker was killed by ``SIGKILL`` (the kernel OOM killer).
- ``"timeout"``: the call ran past ``timeout_s`` (or past the CPU-time backstop).
- ``"crash"``: ``sys.exit()``, ``os._exit()``, a segfault (``ctypes``), a garbled reply.
- ``"syntax"``: the source does not compile, or is larger than ``max_source_bytes``.
- ``"no_grade_function"``: there is no top-level ``grade(sample, item)``.

Clamping a score into a range is the engine's job, not the sandbox's.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import datetime
import decimal
import functools
import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import BaseModel, ConfigDict, Field

from rlft.exceptions import GraderValidationError, UsageError
from rlft.graders._runtime.images import images_for_python
from rlft.graders._sandbox.jail import jail_support
from rlft.graders._sandbox.proc import StopCall, Worker, spawn

__all__ = [
    "Isolation",
    "SandboxErrorKind",
    "SandboxIsolationWarning",
    "SandboxLimits",
    "SandboxPool",
    "SandboxResult",
    "check_source",
    "default_pool",
    "resolve_isolation",
]

SandboxErrorKind = Literal[
    "timeout", "memory", "crash", "exception", "invalid_return", "syntax", "no_grade_function"
]
_WAIT_S = 0.25  # how often a thread waiting for an idle worker checks for cancel and close
_Row = tuple[float, str | None, Any, str]  # score, error, error kind, output
# (sample, item); a str sample is a plain answer's text, which the worker rebuilds into the
# sample dict (sample.plain_sample): a batch crosses the pipe with one string per answer.
_Pair = tuple[Mapping[str, Any] | str, Mapping[str, Any]]
_log = logging.getLogger("rlft.graders.sandbox")


class SandboxIsolationWarning(UserWarning):
    """Python graders run without the OS-level jail on this machine (issued once per process)."""


class SandboxLimits(BaseModel):
    """Per-call limits of the Python grader sandbox; the defaults mirror OpenAI's python grader."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=120.0, gt=0)
    """Wall-clock seconds per call, including compiling the grader (OpenAI: 2 min in total)."""
    memory_mb: int = Field(default=2048, ge=64)
    """``RLIMIT_AS`` per worker, in MiB (OpenAI: 2 GB). Address space, so it counts reservations."""
    max_source_bytes: int = Field(default=256_000, gt=0)
    """Largest grader source, in UTF-8 bytes (OpenAI: code < 256 kB)."""
    max_output_bytes: int = Field(default=64_000, ge=0)
    """Captured stdout + stderr kept per call; more is dropped, never fatal."""
    disk_mb: int = Field(default=1024, ge=1)
    """Size of a jailed worker's private ``/tmp`` (a tmpfs, so it is memory), in MiB
    (OpenAI: 1 GB of disk)."""


_DEFAULT_LIMITS = SandboxLimits()


class SandboxResult(BaseModel):
    """The outcome of one call. A failure scores 0.0 and says why (fail closed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float
    """What ``grade`` returned, as a float; 0.0 on any failure. Not clamped."""
    error: str | None
    """Why it failed, for people: ``"timed out after 2.0 s"``, a traceback's tail, ..."""
    error_kind: SandboxErrorKind | None
    """Why it failed, for code; ``None`` on success (the module docstring lists them)."""
    stdout: str
    """What the grader printed (stdout and stderr), truncated to ``max_output_bytes``."""
    latency_s: float
    """Wall-clock seconds of the whole ``run()`` call, waiting for a free worker included."""

    @property
    def ok(self) -> bool:
        """True when ``grade`` returned a valid score."""
        return self.error_kind is None


# --- checking the source ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    digest: str
    source_json: bytes  # the source as a JSON string, ready to splice into a request
    kind: SandboxErrorKind | None  # "syntax" or "no_grade_function" when it cannot run
    problem: str | None


def check_source(
    source: str, *, limits: SandboxLimits = _DEFAULT_LIMITS, path: str = "source"
) -> None:
    """Check a python grader's source at build time, as OpenAI does before a job starts.

    Args:
        source: Python source defining ``grade(sample, item)`` at the top level.
        limits: Where ``max_source_bytes`` comes from.
        path: The grader path the error names (``"graders.code.source"``).

    Raises:
        GraderValidationError: The source is too large, does not compile (the message gives the
            line), or has no top-level ``grade`` taking ``(sample, item)``.
    """
    info = _inspect_source(source, limits.max_source_bytes)
    if info.problem is not None:
        raise GraderValidationError(info.problem, path=path)


@functools.lru_cache(maxsize=64)
def _inspect_source(source: str, max_bytes: int) -> _Source:
    encoded = source.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(encoded).hexdigest()
    source_json = json.dumps(source).encode()
    if len(encoded) > max_bytes:
        problem = (
            f"python source is {len(encoded):,} bytes; the limit is {max_bytes:,} "
            "(hosted python graders take < 256 kB): move data out of the source or shorten it"
        )
        return _Source(digest, source_json, "syntax", problem)
    try:
        tree = ast.parse(source, filename="<grader>")
        compile(tree, "<grader>", "exec")  # finds what parsing misses: `return` outside a def
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        line = (exc.text or "").strip()
        text = f" in {line!r}" if line else ""
        problem = f"python syntax error at {where}: {exc.msg}{text}; fix the source"
        return _Source(digest, source_json, "syntax", problem)
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return _Source(digest, source_json, "syntax", f"python source does not compile: {exc}")
    missing = _grade_problem(tree)
    return _Source(digest, source_json, "no_grade_function" if missing else None, missing)


def _grade_problem(tree: ast.Module) -> str | None:
    """Find the last top-level binding of ``grade``, as the module will, and check it."""
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    found: ast.AST | None = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defs[node.name] = node
            if node.name == "grade":
                found = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "grade" for t in targets):
                # `grade = my_grader` (Python.from_function writes this alias) is checked as the
                # def it names; anything else is checked when it runs.
                value = node.value
                found = defs.get(value.id, node) if isinstance(value, ast.Name) else node
        elif isinstance(node, ast.Import | ast.ImportFrom) and any(
            (alias.asname or alias.name) == "grade" for alias in node.names
        ):
            found = node
    if found is None:
        return (
            "python source defines no top-level `def grade(sample, item)`; add one that "
            "returns a float"
        )
    if isinstance(found, ast.AsyncFunctionDef):
        return (
            f"line {found.lineno}: `async def {found.name}` cannot be a grader: hosted python "
            "graders call grade(sample, item) synchronously; make it a plain `def`"
        )
    if isinstance(found, ast.FunctionDef):
        args = found.args
        positional = [*args.posonlyargs, *args.args]
        required = len(positional) - len(args.defaults)
        keyword_only = [
            a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None
        ]
        if required > 2 or keyword_only or (len(positional) < 2 and args.vararg is None):
            return (
                f"line {found.lineno}: {found.name}({ast.unparse(args)}) must take two "
                "positional arguments: def grade(sample, item)"
            )
    return None


# --- the pool -----------------------------------------------------------------------------------

Isolation = Literal["required", "auto", "off"]
_ISOLATION_ENV = "RLFT_GRADER_ISOLATION"
_MIN_BATCH_SHARE = 16  # rows per worker before a batch is split across workers
_SHARE_S = 0.004  # split a batch only when each worker's share takes about this long or more
_warned_unjailed = False
_warn_lock = threading.Lock()


def resolve_isolation(isolation: str | None = None) -> Isolation:
    """``isolation``, else ``$RLFT_GRADER_ISOLATION``, else ``"auto"``.

    Raises:
        UsageError: The value is not ``required``, ``auto`` or ``off``.
    """
    value = isolation if isolation is not None else os.environ.get(_ISOLATION_ENV) or "auto"
    value = value.strip().lower()
    if value not in ("required", "auto", "off"):
        source = f"{_ISOLATION_ENV}={value!r}" if isolation is None else f"isolation={value!r}"
        raise UsageError(f"{source}: the grader isolation is one of required, auto, off")
    return value  # type: ignore[return-value]


class SandboxPool:
    """A pool of reusable, sandboxed worker processes that run python graders.

    Each worker serves one grader (one source) for its life, so graders never share a process;
    on Linux each worker is jailed (see ``isolation``). Use it as an async context manager, or
    call ``close()``. Workers start on demand.

    Example:
        ``async with SandboxPool(workers=2) as pool: result = await pool.run(src, sample, item)``
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        """Create a pool; no process starts until the first ``run()``.

        Args:
            workers: Worker processes grading at once, at most (default: the CPUs this process
                may use). Up to twice as many idle workers of other graders are kept warm.
            limits: Per-call limits (default: ``SandboxLimits()``, OpenAI's).
            isolation: ``"required"``: jail every worker (bubblewrap namespaces and seccomp) or
                refuse to run; ``"auto"``: jail where this machine can, else warn once and run
                plain processes; ``"off"``: plain processes. Default: ``$RLFT_GRADER_ISOLATION``,
                else ``"auto"``.

        Raises:
            UsageError: ``workers`` is less than 1, or ``isolation`` is not one of the three.
        """
        if workers is None:
            workers = _available_cpus()
        if workers < 1:
            raise UsageError(f"SandboxPool(workers={workers}): a pool needs at least 1 worker")
        self._size = workers
        self._max_live = max(2 * workers, 4)
        self._limits = limits or _DEFAULT_LIMITS
        self._isolation = resolve_isolation(isolation)
        self._limiter: RunVar[anyio.CapacityLimiter] = RunVar(f"rlft-sandbox-{id(self)}")
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle: dict[str, list[Worker]] = {}  # by grader digest, most recent last
        self._idle_order: list[Worker] = []  # every idle worker, least recently used first
        self._busy = 0  # workers handed out, or being started
        self._starting = 0  # workers being started, not yet in _live
        self._live: set[Worker] = set()
        self._per_row: dict[str, float] = {}  # seconds per row, by grader digest (a running mean)
        self._closed = False

    @property
    def limits(self) -> SandboxLimits:
        """The per-call limits."""
        return self._limits

    @property
    def workers(self) -> int:
        """The most worker processes this pool runs at once."""
        return self._size

    @property
    def isolation(self) -> Isolation:
        """The isolation asked for: ``"required"``, ``"auto"`` or ``"off"``."""
        return self._isolation

    @property
    def jailed(self) -> bool:
        """Whether this pool's workers run in the OS-level jail (checked once per process)."""
        return self._isolation != "off" and jail_support().available

    @property
    def closed(self) -> bool:
        """True once ``close()`` or ``aclose()`` ran."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._live)} started"
        return (
            f"SandboxPool(workers={self._size}, {state}, isolation={self._isolation!r}, "
            f"limits={self._limits!r})"
        )

    async def run(
        self, source: str, sample: Mapping[str, Any], item: Mapping[str, Any]
    ) -> SandboxResult:
        """Call ``grade(sample, item)`` from ``source`` in a worker. Failures score 0.0.

        Args:
            source: The grader's Python source (see ``check_source``).
            sample: The model's answer, a JSON-able dict.
            item: The dataset row, a dict. Values JSON cannot carry (numpy arrays, datetimes)
                are converted as ``run_batch`` says.

        Returns:
            A ``SandboxResult``; bad grader behaviour is data there, never an exception.

        Raises:
            UsageError: The pool is closed, ``sample`` is not a JSON-able dict or ``item`` not
                a dict, or isolation is ``"required"`` and this machine cannot jail.
            RLFTError: A worker process could not be started at all.
        """
        (result,) = await self.run_batch(source, [sample], [item])
        return result

    async def run_batch(
        self,
        source: str,
        samples: Sequence[Mapping[str, Any] | str],
        items: Sequence[Mapping[str, Any]],
    ) -> list[SandboxResult]:
        """Grade many ``(sample, item)`` pairs with one grader, in one round trip per worker.

        A sample is the dict the grader receives, or a plain answer's text, which the worker
        turns into the same dict as ``normalize_sample(text)`` (the engine's fast path).
        Rows are split across up to ``workers`` workers (at least 16 rows each). Limits apply
        per row as in ``run()``: ``timeout_s`` is per row; a row that times out, crashes or
        runs out of memory scores 0.0 with that reason, and the other rows are graded again on
        a fresh worker. What the grader printed comes with the first row of each worker's
        share; ``latency_s`` is the whole batch's.

        Item values JSON cannot carry are converted: numpy arrays and scalars (and anything
        with ``tolist()``) to lists and numbers, datetimes to ISO 8601 strings, sets to lists,
        ``Decimal`` to float. Top-level item fields that still cannot be converted (a PIL
        image) are left out, so a dataset column the grader never reads cannot fail it.

        Raises:
            UsageError: As ``run()``; also when ``samples`` and ``items`` differ in length.
        """
        started = time.monotonic()
        plan = self._plan(source, samples, items, started)
        if isinstance(plan, list):
            return plan
        info, rows, jailed, bounds = plan

        async def share(low: int, high: int) -> list[_Row]:
            cancel = threading.Event()
            try:
                return await anyio.to_thread.run_sync(
                    self._run_blocking,
                    info,
                    rows[low:high],
                    jailed,
                    cancel,
                    limiter=self._thread_limiter(),
                    abandon_on_cancel=True,
                )
            finally:
                cancel.set()  # tells an abandoned call to kill its worker and give the slot back

        parts: list[list[_Row]] = [[] for _ in range(len(bounds) - 1)]

        async def put(k: int) -> None:
            parts[k] = await share(bounds[k], bounds[k + 1])

        if len(parts) == 1:
            await put(0)
        else:
            async with anyio.create_task_group() as group:
                for k in range(len(parts)):
                    group.start_soon(put, k)
        return _results(parts, started)

    def run_batch_sync(
        self,
        source: str,
        samples: Sequence[Mapping[str, Any] | str],
        items: Sequence[Mapping[str, Any]],
    ) -> list[SandboxResult]:
        """``run_batch`` for a caller that may block its thread (TRL's reward function): no
        event loop and no thread hop for the first worker's share.

        Raises:
            UsageError: As ``run_batch``.
        """
        started = time.monotonic()
        rows = self.run_batch_rows(source, samples, items)
        latency = time.monotonic() - started
        return [
            SandboxResult.model_construct(
                score=score, error=error, error_kind=kind, stdout=out, latency_s=latency
            )
            for score, error, kind, out in rows
        ]

    def run_batch_rows(
        self,
        source: str,
        samples: Sequence[Mapping[str, Any] | str],
        items: Sequence[Mapping[str, Any]],
    ) -> list[tuple[float, str | None, SandboxErrorKind | None, str]]:
        """``run_batch_sync`` as plain ``(score, error, error_kind, stdout)`` tuples.

        The engine's hot path: a model object per row costs more than grading a cheap one.

        Raises:
            UsageError: As ``run_batch``.
        """
        started = time.monotonic()
        plan = self._plan(source, samples, items, started)
        if isinstance(plan, list):
            return [(r.score, r.error, r.error_kind, r.stdout) for r in plan]
        info, rows, jailed, bounds = plan
        parts: list[list[_Row]] = [[] for _ in range(len(bounds) - 1)]
        errors: list[BaseException] = []
        never = threading.Event()

        def put(k: int) -> None:
            try:
                parts[k] = self._run_blocking(info, rows[bounds[k] : bounds[k + 1]], jailed, never)
            except BaseException as exc:
                errors.append(exc)

        helpers = [threading.Thread(target=put, args=(k,)) for k in range(1, len(parts))]
        for helper in helpers:
            helper.start()
        put(0)
        for helper in helpers:
            helper.join()
        if errors:
            raise errors[0]
        return [row for part in parts for row in part]

    def _plan(
        self,
        source: str,
        samples: Sequence[Mapping[str, Any] | str],
        items: Sequence[Mapping[str, Any]],
        started: float,
    ) -> list[SandboxResult] | tuple[_Source, list[_Pair], bool, list[int]]:
        """Check a batch: its results when there is nothing to run, else what to run where."""
        if len(samples) != len(items):
            raise UsageError(f"run_batch: {len(samples)} samples but {len(items)} items")
        info = _inspect_source(source, self._limits.max_source_bytes)
        if info.kind is not None:
            latency = time.monotonic() - started
            failed = SandboxResult(
                score=0.0, error=info.problem, error_kind=info.kind, stdout="", latency_s=latency
            )
            return [failed] * len(samples)
        items = images_for_python(items, source)  # images as metadata (_runtime/images.py)
        rows = _check_rows(samples, items)
        if self._closed:
            raise _closed_error()
        jailed = self._check_isolation()
        if not rows:
            return []
        shares = self._shares(info.digest, len(rows))
        return info, rows, jailed, [len(rows) * k // shares for k in range(shares + 1)]

    def _shares(self, digest: str, count: int) -> int:
        """Into how many workers' shares to split a batch: more only when it pays."""
        shares = max(1, min(self._size, count // _MIN_BATCH_SHARE))
        per_row = self._per_row.get(digest)
        if per_row is not None:  # a cheap grader: one round trip beats a thread hop per worker
            shares = max(1, min(shares, int(per_row * count / _SHARE_S)))
        return shares

    def _check_isolation(self) -> bool:
        """Whether to jail; raises when isolation is required but unavailable, warns once."""
        global _warned_unjailed
        if self._isolation == "off":
            return False
        support = jail_support()
        if support.available:
            return True
        if self._isolation == "required":
            raise UsageError(
                f"python grader isolation is required but unavailable: {support.reason}; "
                f"or set {_ISOLATION_ENV}=auto to run graders without the jail"
            )
        with _warn_lock:
            first, _warned_unjailed = not _warned_unjailed, True
        if first:
            warnings.warn(
                f"python graders run WITHOUT the OS-level jail: {support.reason}. Grader code "
                "can read your files and reach the network; run only graders you trust, or set "
                f"{_ISOLATION_ENV}=required to refuse",
                SandboxIsolationWarning,
                stacklevel=4,
            )
            _log.warning("python graders run without the OS-level jail: %s", support.reason)
        return False

    def _thread_limiter(self) -> anyio.CapacityLimiter:
        # A CapacityLimiter belongs to one event loop; RunVar gives each loop its own.
        try:
            return self._limiter.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self._size)
            self._limiter.set(limiter)
            return limiter

    def _run_blocking(
        self,
        info: _Source,
        rows: list[_Pair],
        jailed: bool,
        cancel: threading.Event,
    ) -> list[_Row]:
        results: list[_Row | None] = [None] * len(rows)
        pending = list(range(len(rows)))
        while pending:
            encoded = _encode_rows(
                rows if len(pending) == len(rows) else [rows[i] for i in pending]
            )
            worker = self._acquire(info.digest, jailed, cancel)
            keep = False
            try:
                try:
                    called = time.monotonic()
                    replies = worker.call(
                        info.digest,
                        info.source_json,
                        encoded,
                        len(pending),
                        self._limits.timeout_s,
                        cancel,
                    )
                    per_row = (time.monotonic() - called) / len(pending)
                    previous = self._per_row.get(info.digest, per_row)
                    self._per_row[info.digest] = 0.5 * previous + 0.5 * per_row
                except StopCall as stop:
                    if self._closed:
                        raise _closed_error() from None
                    failed = (0.0, stop.error, stop.kind, stop.output)
                    if stop.index is None:  # died loading the module: every row would too
                        for i in pending:
                            results[i] = failed
                        pending = []
                    else:  # blame the row in progress; grade the others on a fresh worker
                        results[pending.pop(stop.index)] = failed
                    continue
                for i, reply in zip(pending, replies, strict=True):
                    results[i] = reply
                pending = []
                # A worker that ran out of memory may be fragmented: replace it.
                keep = all(reply[2] != "memory" for reply in replies)
            finally:
                self._release(worker, keep)
        return [row for row in results if row is not None]

    def _acquire(self, digest: str, jailed: bool, cancel: threading.Event) -> Worker:
        """An idle worker of this grader, or a new one (evicting the least recently used idle
        worker of another grader when ``2 * workers`` are alive). Never one of another grader."""
        dead: Worker | None = None
        with self._changed:
            while True:
                if self._closed:
                    raise _closed_error()
                if cancel.is_set():
                    raise _Abandoned  # run() was cancelled: nobody reads this thread's result
                if self._busy < self._size:
                    mine = self._idle.get(digest)
                    if mine:
                        worker = mine.pop()
                        self._idle_order.remove(worker)
                        self._busy += 1
                        if worker.alive():
                            return worker
                        dead = worker  # died while idle (a grader's stray thread): replace it
                        self._live.discard(worker)
                        break
                    if len(self._live) + self._starting < self._max_live or self._idle_order:
                        if len(self._live) + self._starting >= self._max_live:
                            dead = self._idle_order.pop(0)  # the least recently used
                            self._idle[dead.digest].remove(dead)
                            self._live.discard(dead)
                        self._busy += 1
                        break
                self._changed.wait(_WAIT_S)
            self._starting += 1
        try:
            if dead is not None:
                dead.dispose()
            worker = spawn(
                self._limits.memory_mb,
                self._limits.timeout_s,
                digest=digest,
                jailed=jailed,
                max_output=self._limits.max_output_bytes,
                disk_mb=self._limits.disk_mb,
            )
        except BaseException:
            with self._changed:
                self._busy -= 1
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.dispose()
            raise _closed_error()
        return worker

    def _release(self, worker: Worker, keep: bool) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify()
            if keep and worker.usable() and not self._closed:
                self._idle.setdefault(worker.digest, []).append(worker)
                self._idle_order.append(worker)
                return
            self._live.discard(worker)
        worker.dispose()

    def close(self) -> None:
        """Kill every worker and refuse new calls. Idempotent.

        Calls in flight raise ``UsageError``; call it from any thread.
        """
        with self._changed:
            if self._closed:
                return
            self._closed = True
            live = list(self._live)
            idle = list(self._idle_order)
            self._idle.clear()
            self._idle_order.clear()
            self._changed.notify_all()
        for worker in live:
            worker.terminate()  # a busy worker's caller sees it die and disposes of it
        for worker in idle:
            with self._changed:
                self._live.discard(worker)
            worker.dispose()

    async def aclose(self) -> None:
        """Kill every worker and refuse new calls. Idempotent."""
        await anyio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    def __del__(self, _suppress: type[contextlib.suppress] = contextlib.suppress) -> None:
        # An unclosed pool that is collected must not leave its processes behind. The default
        # argument keeps `suppress` reachable at interpreter exit, when module globals are None.
        with _suppress(Exception):
            self.close()

    def _after_fork_in_child(self) -> None:
        # The workers belong to the parent: drop our copies of their pipes without killing them.
        for worker in self._live:
            worker.abandon()
        self._reset()


class _Abandoned(Exception):
    pass


def _closed_error() -> UsageError:
    return UsageError("the SandboxPool is closed; create a new one, or use default_pool()")


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _results(parts: list[list[_Row]], started: float) -> list[SandboxResult]:
    latency = time.monotonic() - started
    build = SandboxResult.model_construct  # the worker's replies were checked in proc
    return [
        build(score=score, error=error, error_kind=kind, stdout=out, latency_s=latency)
        for part in parts
        for score, error, kind, out in part
    ]


def _check_rows(
    samples: Sequence[Mapping[str, Any] | str], items: Sequence[Mapping[str, Any]]
) -> list[_Pair]:
    rows = list(zip(samples, items, strict=True))
    for sample, item in rows:
        if type(item) is dict and type(sample) in (str, dict):  # the common case, no ABC checks
            continue
        if not isinstance(sample, Mapping | str):
            raise UsageError(
                f"python grader sample must be a dict of JSON values, not {type(sample).__name__}"
            )
        if not isinstance(item, Mapping):
            raise UsageError(f"python grader item must be a dict, not {type(item).__name__}")
    return rows


# Twice as fast as json.dumps: no cycle bookkeeping (a cycle ends in RecursionError instead).
_fast_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _encode_rows(rows: list[_Pair]) -> bytes:
    """``[[sample,item],...]`` as JSON for the worker: one encoder pass when it can be."""
    try:
        if all(type(i) is dict and type(s) in (str, dict) for s, i in rows):
            return _fast_json(rows).encode()  # the (sample, item) tuples become JSON arrays
        return _fast_json([[_plain(s), dict(i)] for s, i in rows]).encode()
    except (TypeError, ValueError, RecursionError):  # RecursionError: a cycle, or too deep
        return b"[" + b",".join(_encode_row(sample, item) for sample, item in rows) + b"]"


def _plain(sample: Mapping[str, Any] | str) -> dict[str, Any] | str:
    return sample if isinstance(sample, str) else dict(sample)


def _encode_row(sample: Mapping[str, Any] | str, item: Mapping[str, Any]) -> bytes:
    """``[sample,item]`` as JSON bytes, converting or leaving out what the item cannot carry."""
    try:
        sample_json = json.dumps(_plain(sample), separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(
            f"python grader sample is not JSON-serialisable ({exc}); graders receive plain "
            "dicts, lists, strings, numbers, booleans and None"
        ) from None
    try:
        item_json = json.dumps(dict(item), separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        item_json = _encode_item_leniently(item)
    return f"[{sample_json},{item_json}]".encode()


def _encode_item_leniently(item: Mapping[str, Any]) -> str:
    """Convert what JSON cannot carry; leave out the top-level fields that still fail."""
    kept: dict[str, str] = {}
    for key, value in item.items():
        try:
            kept[str(key)] = json.dumps(value, separators=(",", ":"), default=_jsonable)
        except (TypeError, ValueError, RecursionError):
            continue  # a column the grader cannot use (a PIL image): the grader never gets it
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in kept.items()) + "}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        number = float(value)
        if math.isfinite(number):
            return number
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist) and type(value).__module__.split(".")[0] in ("numpy", "torch", "pandas"):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# --- the process-wide pool ----------------------------------------------------------------------

_POOLS: weakref.WeakSet[SandboxPool] = weakref.WeakSet()
_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool (default limits, one worker per CPU), started on first use.

    Its isolation comes from ``$RLFT_GRADER_ISOLATION`` (default ``"auto"``). It is closed at
    interpreter exit; if someone closed it earlier, a new one is made.

    Raises:
        UsageError: ``$RLFT_GRADER_ISOLATION`` is not ``required``, ``auto`` or ``off``.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = SandboxPool()
        return _default


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for pool in list(_POOLS):
        pool._after_fork_in_child()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_after_fork_in_child)
