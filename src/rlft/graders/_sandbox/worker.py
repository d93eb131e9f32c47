"""The grader worker process that ``rlft.graders._sandbox.SandboxPool`` starts and reuses.

Run as ``python -I worker.py REQUEST_FD REPLY_FD PROGRESS_FD MEMORY_MB TIMEOUT_S DIGEST``, usually
inside the jail (``jail.py``). It uses the standard library only and imports nothing from rlft, so
it starts fast and the caller's state never reaches it. It runs one grader only, the one whose
source has the SHA-256 ``DIGEST``: graders never share a worker, so one cannot change another's
modules or globals.

Protocol: frames of a 4-byte big-endian length and a UTF-8 JSON object, read from ``REQUEST_FD``
and written to ``REPLY_FD``, two pipes passed with ``pass_fds``. The worker's stdout and stderr
(fds 1 and 2) are another pipe the parent drains and truncates, so nothing the grader prints,
even with ``os.write(1, ...)``, can reach the protocol. The first frame out is ``{"ready": true}``.

- request ``{"id", "rows": [[sample, item], ...], "source"?}``: ``source`` comes with the first
  request; the module is executed once and its ``grade`` (or its failure) kept. A sample that
  is a string is a plain answer's text: the worker builds the sample dict from it
  (``_plain_sample``, equal to rlft's ``normalize_sample(text)``, tested).
- reply ``{"id", "results": [...]}``, one per row: a number on success, ``[kind, error]`` on
  failure.

Before each row the worker writes the row's index into ``PROGRESS_FD``, 8 shared bytes the
parent reads to move a per-row deadline and to blame the right row when the worker dies.

Before any user code runs the worker lowers its own limits (address space, a moving CPU-time
backstop, no core files, 1 GiB per written file) and replaces ``socket.socket`` and the DNS
functions so the grader cannot open network connections (best effort: see ``_sandbox``).
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import hashlib
import json
import linecache
import math
import mmap
import numbers
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, NoReturn

_HEADER = struct.Struct(">I")
_TRACEBACK_CHARS = 2000  # the tail of a traceback kept in a reply
_ERROR_CHARS = 2000  # the tail of any error kept in a reply (the parent bounds replies per row)
_FILE_SIZE_LIMIT = 1 << 30  # OpenAI's python grader sandbox has 1 GB of disk
_PARENT_CHECK_S = 1.0  # how often the watchdog checks that the parent is still alive
_NETWORK_DENIED = "network access is disabled in the rlft python grader sandbox"

Grade = Callable[[Any, Any], Any]
Reply = dict[str, Any]

# Bound now, so a grader that monkeypatches the json module cannot break the protocol.
_dumps = json.dumps
_loads = json.loads

# Freed when a grader exhausts the address space, so the reply can still be built.
_reserve: bytearray | None = bytearray(1 << 20)


# --- limits and isolation -----------------------------------------------------------------------


def _set_limit(which: int, value: int) -> None:
    try:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # an unprivileged process may only lower a hard limit
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):  # e.g. macOS does not enforce RLIMIT_AS: best effort
        pass


def _limit_resources(memory_mb: int) -> None:
    _set_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _set_limit(resource.RLIMIT_CORE, 0)  # a segfaulting grader must not litter core files
    _set_limit(resource.RLIMIT_FSIZE, _FILE_SIZE_LIMIT)
    # Past RLIMIT_FSIZE a write fails with EFBIG (an exception in the grader) instead of SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _arm_cpu_backstop(timeout_s: float, cpus: int) -> None:
    """Let SIGXCPU end this process if the call burns far more CPU than its timeout allows.

    The parent enforces the wall-clock timeout; this only matters if the parent died mid-call.
    Only the soft limit moves (the hard one is never lowered), so every call gets a fresh budget.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + timeout_s * cpus) + 5
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _deny_network() -> None:
    """Make every non-local socket and DNS lookup fail with a clear error (best effort).

    ``AF_UNIX`` sockets and sockets wrapping an existing fd stay allowed: ``asyncio`` needs a
    ``socketpair`` for its event loop. C extensions and subprocesses can still reach the network.
    """

    class _NoNetworkSocket(socket.socket):
        def __init__(
            self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
        ) -> None:
            if fileno is None and family != socket.AF_UNIX:
                raise PermissionError(errno.EACCES, _NETWORK_DENIED)
            super().__init__(family, type, proto, fileno)

    def _no_dns(*args: object, **kwargs: object) -> Any:
        raise socket.gaierror(socket.EAI_FAIL, _NETWORK_DENIED)

    _NoNetworkSocket.__name__ = _NoNetworkSocket.__qualname__ = "socket"
    setattr(socket, "socket", _NoNetworkSocket)  # noqa: B010 - mypy forbids assigning a class
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, _no_dns)


def _orphaned_exit(home: str, status: int) -> NoReturn:
    """Leave without the parent: remove the temporary home it would have removed, and exit."""
    import shutil

    os.chdir("/")
    shutil.rmtree(home, ignore_errors=True)
    os._exit(status)


def _watch_parent(parent: int, home: str) -> None:
    """Exit when the parent dies, even while a grader sleeps (EOF only arrives between calls)."""
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            _orphaned_exit(home, 70)


# --- the protocol -------------------------------------------------------------------------------


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # the parent closed the pipe: the pool is gone
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


def _write_frame(fd: int, message: Reply) -> None:
    body = _dumps(message, allow_nan=False).encode()
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


# --- running a grader ---------------------------------------------------------------------------


def _failure(kind: str, error: str) -> Reply:
    return {"score": 0.0, "kind": kind, "error": error}


def _describe(exc: BaseException, what: str) -> Reply:
    """Turn an exception escaping user code into a failure reply."""
    if isinstance(exc, SystemExit):
        return _failure("crash", f"{what} called sys.exit({exc.code!r}); return a score instead")
    if isinstance(exc, KeyboardInterrupt):
        return _failure("crash", f"{what} raised KeyboardInterrupt")
    # Skip the worker's own frame: the traceback starts in the grader's source.
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) > _TRACEBACK_CHARS:
        text = "..." + text[-_TRACEBACK_CHARS:]
    return _failure("exception", text.rstrip("\n"))


def _last_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:  # no allocation: memory is exhausted here
        line, tb = tb.tb_lineno, tb.tb_next
    return line


def _out_of_memory(line: int | None, memory_mb: int) -> Reply:
    where = f" (line {line})" if line is not None else ""
    return _failure(
        "memory", f"MemoryError{where}: the grader exceeded the {memory_mb} MB memory limit"
    )


def _load(digest: str, source: str, memory_mb: int) -> Grade | Reply:
    """Compile and execute the grader's module, returning ``grade`` or a failure reply."""
    global _reserve
    filename = f"<grader {digest[:12]}>"
    # Registered so tracebacks show the grader's own lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        line = f"line {exc.lineno}: " if isinstance(exc, SyntaxError) and exc.lineno else ""
        return _failure("syntax", f"{line}{exc}")
    namespace: dict[str, Any] = {"__name__": "grader", "__builtins__": __builtins__}
    memory_line: int | None = None
    try:
        exec(code, namespace)
    except MemoryError as exc:
        _reserve = None
        memory_line = _last_line(exc.__traceback__)
    except BaseException as exc:
        return _describe(exc, "the grader module")
    else:
        grade = namespace.get("grade")
        if not callable(grade):
            return _failure(
                "no_grade_function", "the source defines no top-level `def grade(sample, item)`"
            )
        return grade  # type: ignore[no-any-return]
    return _out_of_memory(memory_line, memory_mb)  # the frames are freed once out of `except`


def _check_value(value: Any) -> Reply:
    """Accept a finite real number; refuse everything else, saying what to return instead."""
    kind = type(value).__name__
    if value is None:
        return _failure("invalid_return", "grade() returned None; return a float (missing return?)")
    if isinstance(value, bool) or (kind.startswith("bool") and type(value).__module__ == "numpy"):
        # Refused although bool is an int: hosted sandboxes require a number, and a grader that
        # scores 1 here but 0 on a paid job is worse than one that fails the local test.
        return _failure(
            "invalid_return", f"grade() returned a bool ({value!r}); return float(...) instead"
        )
    if isinstance(value, numbers.Real):
        try:
            score = float(value)
        except Exception as exc:  # a user-defined Real whose __float__ breaks
            return _failure("invalid_return", f"float() of grade()'s {kind} failed: {exc!r}")
        if not math.isfinite(score):
            return _failure("invalid_return", f"grade() returned {score}; return a finite float")
        return {"score": score}
    shown = repr(value) if isinstance(value, str | bytes) else kind
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return _failure("invalid_return", f"grade() returned {shown}; return a float")


def _plain_sample(text: str) -> dict[str, Any]:
    """``rlft.graders._runtime.sample.plain_sample(text)`` as a python grader receives it (its
    ``output_json`` is ``{}`` for a non-object). A copy, because this file imports no rlft: a
    test holds the two equal."""
    output_json: Any = {}
    if text.lstrip()[:1] == "{":  # only then can it be a JSON object
        try:
            parsed = _loads(text)
        except (ValueError, RecursionError):
            parsed = None
        if type(parsed) is dict:
            output_json = parsed
    return {
        "output_text": text,
        "output_tools": [],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
        "output_json": output_json,
        "output_audio": None,
    }


def _call(grade: Grade, sample: Any, item: Any, memory_mb: int) -> Reply | float:
    """A finite float score as it is (the fast path), or a reply dict."""
    global _reserve
    memory_line: int | None = None
    try:
        value = grade(sample, item)
    except MemoryError as exc:
        _reserve = None
        memory_line = _last_line(exc.__traceback__)
    except BaseException as exc:
        return _describe(exc, "grade()")
    else:
        if type(value) is float and math.isfinite(value):
            return value
        try:
            return _check_value(value)
        except BaseException as exc:  # a hostile __repr__ or __float__
            return _describe(exc, "checking grade()'s return value")
    return _out_of_memory(memory_line, memory_mb)


class _Worker:
    def __init__(self, *, memory_mb: int, timeout_s: float, digest: str, progress: Any) -> None:
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.digest = digest
        self.progress = progress
        self.cpus = os.cpu_count() or 1
        self.grade: Grade | None = None
        self.broken: Reply | None = None  # the module failed to load: every row gets this
        self.home = os.getcwd()
        self.recursion_limit = sys.getrecursionlimit()

    def handle(self, request: Reply) -> list[Any]:
        rows = request["rows"]
        _arm_cpu_backstop(self.timeout_s * max(1, len(rows)), self.cpus)
        self.progress[0] = -1
        if self.grade is None and self.broken is None:
            source = request.get("source")
            if not isinstance(source, str):
                self.broken = _failure("crash", "the worker was not sent its grader's source")
            elif hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest() != self.digest:
                self.broken = _failure("crash", "this worker runs another grader")
            else:
                loaded = _load(self.digest, source, self.memory_mb)
                if isinstance(loaded, dict):
                    self.broken = loaded
                else:
                    self.grade = loaded
        results: list[Any] = []
        grade, progress, memory_mb = self.grade, self.progress, self.memory_mb
        for index, (sample, item) in enumerate(rows):
            progress[0] = index
            if type(sample) is str:
                sample = _plain_sample(sample)
            reply = self.broken if grade is None else _call(grade, sample, item, memory_mb)
            if type(reply) is float:  # the common case: a finite float, as it is
                results.append(reply)
                continue
            assert isinstance(reply, dict)
            if "kind" in reply:  # the error's tail: a reply's size is bounded per row
                error = reply["error"]
                if len(error) > _ERROR_CHARS:
                    error = "..." + error[-_ERROR_CHARS:]
                results.append([reply["kind"], error])
            else:
                results.append(reply["score"])
        return results

    def restore(self) -> None:
        """Undo the cheap-to-undo global changes a grader may have made, and flush its prints."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()  # type: ignore[union-attr]
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        try:
            if os.getcwd() != self.home:
                os.chdir(self.home)
        except OSError:  # the grader deleted its own directory: nothing left to restore
            pass


def main(argv: list[str]) -> None:
    """Serve grading requests until the parent closes the request pipe."""
    request_fd, reply_fd, progress_fd = int(argv[0]), int(argv[1]), int(argv[2])
    memory_mb, timeout_s, digest = int(argv[3]), float(argv[4]), argv[5]
    progress = memoryview(mmap.mmap(progress_fd, 8)).cast("q")
    os.close(progress_fd)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")
    faulthandler.enable(
        all_threads=False
    )  # a segfault prints the grader's traceback into the captured output
    _limit_resources(memory_mb)
    _deny_network()
    threading.stack_size(256 * 1024)  # keep the watchdog small under RLIMIT_AS
    worker = _Worker(memory_mb=memory_mb, timeout_s=timeout_s, digest=digest, progress=progress)
    watchdog = threading.Thread(target=_watch_parent, args=(os.getppid(), worker.home))
    watchdog.daemon = True
    watchdog.start()
    stream = os.fdopen(request_fd, "rb", buffering=1 << 16)
    _write_frame(reply_fd, {"ready": True, "pid": os.getpid()})
    while True:
        body = _read_frame(stream)
        if body is None:  # the parent exited or dropped us without killing us first
            _orphaned_exit(worker.home, 0)
        request = _loads(body)
        results = worker.handle(request)
        worker.restore()
        _write_frame(reply_fd, {"id": request["id"], "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
