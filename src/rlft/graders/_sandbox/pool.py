"""Run user-written Python graders, ``def grade(sample, item) -> float``, in sandboxed processes.

``SandboxPool`` keeps a few worker processes (``python -I _sandbox_worker.py``, started with
``subprocess``, so it also works in AWS Lambda, which has no ``/dev/shm``) and reuses them; each
worker compiles a grader once and caches it by the SHA-256 of its source. ``run()`` may be
called from any thread and any event loop (TRL calls reward functions from its own thread and
loop): idle workers sit in a thread-safe queue, and each call's blocking pipe I/O runs in
``anyio.to_thread.run_sync`` under a per-event-loop ``CapacityLimiter`` the size of the pool.

Limits (``SandboxLimits``; the defaults mirror OpenAI's hosted python grader)

- ``timeout_s``, 120 s per call (OpenAI: 2 min). The parent's deadline; the worker is killed with
  its process group and replaced. Exceeded: ``"timeout"``.
- ``memory_mb``, 2048 MB per worker (OpenAI: 2 GB). ``RLIMIT_AS`` (address space, not RSS), set
  by the worker on itself; the worker is replaced after. Exceeded: ``"memory"``.
- ``max_source_bytes``, 256,000 bytes of UTF-8 (OpenAI: code < 256 kB). ``check_source`` at build
  time and ``run()``. Exceeded: ``GraderValidationError``, or ``"syntax"`` from ``run()``.
- ``max_output_bytes``, 64,000 bytes per call. The first bytes of stdout + stderr are kept; the
  rest is dropped with a one-line note. Never fatal.

Fixed backstops: a CPU-time limit (``RLIMIT_CPU``, the timeout times the core count plus 5 s,
re-armed per call) that only matters if the parent dies mid-call; a watchdog thread that ends
the worker when its parent dies; no core files; at most 1 GiB per written file (OpenAI: 1 GB
disk); ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``. POSIX only (Linux, macOS;
macOS does not enforce ``RLIMIT_AS``).

Isolation: each worker is a separate process (no access to the caller's objects) with a clean
environment (only ``PATH``, ``LANG``, ``LC_ALL``, ``LC_CTYPE``, ``TZ`` and ``NLTK_DATA`` pass
through, so API keys and other secrets never reach grader code; ``NLTK_DATA`` defaults to the
caller's ``~/nltk_data`` when that exists), ``HOME``, ``TMPDIR`` and the working directory set to
a fresh temporary directory removed with the worker, Python's isolated mode (``-I``: no
``PYTHON*`` variables, no user site-packages; graders import what the interpreter running rlft
has installed), stdin from ``/dev/null``, and a new session (Ctrl-C in the caller does not reach
it). Results travel on a dedicated pipe, never on stdout, so printing cannot corrupt them.
Network denial is **best effort**: ``socket.socket`` (except ``AF_UNIX``) and DNS lookups raise,
which stops ``urllib``, ``http.client``, ``requests`` and ``httpx``, but a C extension or a
subprocess can still reach the network. The sandbox contains accidents (loops, leaks, crashes,
floods of output); it is not a security boundary against hostile code. Graders in one worker
share the process and its imported modules; a grader's module-level state persists between its
calls in that worker (as it may in a hosted sandbox), so do not rely on it either way.

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
import functools
import hashlib
import json
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import BaseModel, ConfigDict, Field

from rlft.exceptions import GraderValidationError, UsageError
from rlft.graders._sandbox.proc import StopCall, Worker, spawn

__all__ = [
    "SandboxErrorKind",
    "SandboxLimits",
    "SandboxPool",
    "SandboxResult",
    "check_source",
    "default_pool",
]

SandboxErrorKind = Literal[
    "timeout", "memory", "crash", "exception", "invalid_return", "syntax", "no_grade_function"
]
_WAIT_S = 0.25  # how often a thread waiting for an idle worker checks for cancel and close


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


class SandboxPool:
    """A pool of reusable, sandboxed worker processes that run python graders.

    Use it as an async context manager, or call ``close()``. Workers start on demand.

    Example:
        ``async with SandboxPool(workers=2) as pool: result = await pool.run(src, sample, item)``
    """

    def __init__(self, *, workers: int | None = None, limits: SandboxLimits | None = None) -> None:
        """Create a pool; no process starts until the first ``run()``.

        Args:
            workers: Worker processes at most (default: the CPUs this process may use).
            limits: Per-call limits (default: ``SandboxLimits()``, OpenAI's).

        Raises:
            UsageError: ``workers`` is less than 1.
        """
        if workers is None:
            workers = _available_cpus()
        if workers < 1:
            raise UsageError(f"SandboxPool(workers={workers}): a pool needs at least 1 worker")
        self._size = workers
        self._limits = limits or _DEFAULT_LIMITS
        self._limiter: RunVar[anyio.CapacityLimiter] = RunVar(f"rlft-sandbox-{id(self)}")
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[Worker | None] = queue.LifoQueue()  # None: a slot to fill
        for _ in range(self._size):
            self._idle.put(None)
        self._live: set[Worker] = set()
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
    def closed(self) -> bool:
        """True once ``close()`` or ``aclose()`` ran."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._live)} started"
        return f"SandboxPool(workers={self._size}, {state}, limits={self._limits!r})"

    async def run(
        self, source: str, sample: Mapping[str, Any], item: Mapping[str, Any]
    ) -> SandboxResult:
        """Call ``grade(sample, item)`` from ``source`` in a worker. Failures score 0.0.

        Args:
            source: The grader's Python source (see ``check_source``).
            sample: The model's answer, a JSON-able dict.
            item: The dataset row, a JSON-able dict.

        Returns:
            A ``SandboxResult``; bad grader behaviour is data there, never an exception.

        Raises:
            UsageError: The pool is closed, or ``sample``/``item`` is not a JSON-able dict.
            RLFTError: A worker process could not be started at all.
        """
        started = time.monotonic()
        info = _inspect_source(source, self._limits.max_source_bytes)
        if info.kind is not None:
            latency = time.monotonic() - started
            return SandboxResult(
                score=0.0, error=info.problem, error_kind=info.kind, stdout="", latency_s=latency
            )
        inputs = _encode_inputs(sample, item)
        if self._closed:
            raise _closed_error()
        cancel = threading.Event()
        try:
            score, error, kind, stdout = await anyio.to_thread.run_sync(
                self._run_blocking,
                info,
                inputs,
                cancel,
                limiter=self._thread_limiter(),
                abandon_on_cancel=True,
            )
        finally:
            cancel.set()  # tells an abandoned call to kill its worker and give the slot back
        return SandboxResult(
            score=score,
            error=error,
            error_kind=kind,
            stdout=stdout,
            latency_s=time.monotonic() - started,
        )

    def _thread_limiter(self) -> anyio.CapacityLimiter:
        # A CapacityLimiter belongs to one event loop; RunVar gives each loop its own.
        try:
            return self._limiter.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self._size)
            self._limiter.set(limiter)
            return limiter

    def _run_blocking(
        self, info: _Source, inputs: bytes, cancel: threading.Event
    ) -> tuple[float, str | None, SandboxErrorKind | None, str]:
        worker = self._acquire(cancel)
        keep = False
        try:
            try:
                reply = worker.call(
                    info.digest, info.source_json, inputs, self._limits.timeout_s, cancel
                )
            except StopCall as stop:
                if self._closed:
                    raise _closed_error() from None
                return 0.0, stop.error, stop.kind, stop.output
            kind = reply.kind
            keep = kind != "memory"  # a worker that ran out of memory may be fragmented: replace
            return reply.score, reply.error, kind, reply.output
        finally:
            self._release(worker, keep)

    def _acquire(self, cancel: threading.Event) -> Worker:
        while True:
            if self._closed:
                raise _closed_error()
            if cancel.is_set():
                raise _Abandoned  # run() was cancelled: nobody reads this thread's result
            try:
                slot = self._idle.get(timeout=_WAIT_S)
            except queue.Empty:
                continue
            break
        if slot is not None and not self._closed and slot.alive():
            return slot
        if slot is not None:  # died while idle (a grader's stray thread), or the pool closed
            self._forget(slot)
        if self._closed:
            raise _closed_error()
        try:
            worker = spawn(
                self._limits.memory_mb,
                self._limits.timeout_s,
                max_output=self._limits.max_output_bytes,
            )
        except BaseException:
            self._give_back(None)
            raise
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.dispose()
            raise _closed_error()
        return worker

    def _release(self, worker: Worker, keep: bool) -> None:
        if keep and worker.usable():
            with self._lock:
                if not self._closed:
                    self._idle.put(worker)
                    return
        self._forget(worker)
        self._give_back(None)

    def _forget(self, worker: Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.dispose()

    def _give_back(self, slot: Worker | None) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(slot)

    def close(self) -> None:
        """Kill every worker and refuse new calls. Idempotent.

        Calls in flight raise ``UsageError``; call it from any thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live = list(self._live)
        for worker in live:
            worker.terminate()  # a busy worker's caller sees it die and disposes of it
        while True:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                break
            if slot is not None:
                self._forget(slot)

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


def _encode_inputs(sample: Mapping[str, Any], item: Mapping[str, Any]) -> bytes:
    parts = []
    for name, value in (("sample", sample), ("item", item)):
        if not isinstance(value, Mapping):
            raise UsageError(
                f"python grader {name} must be a dict of JSON values, not {type(value).__name__}"
            )
        try:
            parts.append(json.dumps(dict(value), separators=(",", ":")))
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"python grader {name} is not JSON-serialisable ({exc}); graders receive plain "
                "dicts, lists, strings, numbers, booleans and None"
            ) from None
    return f',"sample":{parts[0]},"item":{parts[1]}}}'.encode()


# --- the process-wide pool ----------------------------------------------------------------------

_POOLS: weakref.WeakSet[SandboxPool] = weakref.WeakSet()
_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool (default limits, one worker per CPU), started on first use.

    It is closed at interpreter exit; if someone closed it earlier, a new one is made.
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
