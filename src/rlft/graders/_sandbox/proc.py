"""One grader worker process seen from the parent: spawn, one call over pipes, kill, clean up.

A ``Worker`` is used by one thread at a time (the pool hands it out from its idle queue);
``terminate()`` is the one method another thread may call, to kill it from ``close()``. The
protocol is described in ``_sandbox_worker``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlft.exceptions import RLFTError

__all__ = ["CallReply", "StopCall", "Worker", "spawn"]

_SCRIPT = str(Path(__file__).with_name("worker.py"))
_HEADER = struct.Struct(">I")
_CACHE_SIZE = 128  # compiled graders kept per worker
_START_TIMEOUT_S = 30.0  # a cold interpreter on a loaded machine can take seconds
_TICK_S = 0.25  # how often a waiting call checks for cancellation
_CHUNK = 1 << 16
_DRAIN_CHUNKS = 16  # read at most this much output per wake-up, so deadlines still get checked
_MAX_REPLY = 1 << 20  # a reply is small; more means the pipe carries garbage
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NLTK_DATA")
_UNKNOWN_STATUS = 1 << 16  # exited, but another waitpid() took the status
_KINDS = frozenset(
    {"timeout", "memory", "crash", "exception", "invalid_return", "syntax", "no_grade_function"}
)


class StopCall(Exception):
    """A call ended without a reply: timeout, cancellation, or the worker died. It is dead now."""

    def __init__(self, kind: str, error: str, output: str = "") -> None:
        super().__init__(error)
        self.kind: Any = kind
        self.error = error
        self.output = output


@dataclass(frozen=True, slots=True)
class CallReply:
    score: float
    error: str | None
    kind: Any  # one of the sandbox's error kinds, or None
    output: str


class _Output:
    """The first ``limit`` bytes of what the grader printed; the rest is counted and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.dropped:
            text += (
                f"\n[rlft: {self.dropped:,} more bytes of output dropped (limit {self.limit:,})]"
            )
        return text


class Worker:
    """A started worker process and the parent's ends of its three pipes."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        request_fd: int,
        reply_fd: int,
        output_fd: int,
        home: str,
        max_output: int,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.output_fd = output_fd
        self.home = home
        self.max_output = max_output
        self.known: set[str] = set()  # digests this worker has compiled, as far as we know
        self._calls = 0
        self._lock = threading.Lock()
        self._reaped = False
        self._dead = False
        self._disposed = False

    def __repr__(self) -> str:
        return f"<sandbox worker pid={self.pid}{' dead' if self._dead else ''}>"

    # --- calls -----------------------------------------------------------------------------

    def call(
        self,
        digest: str,
        source_json: bytes,
        inputs: bytes,
        timeout_s: float,
        cancel: threading.Event,
    ) -> CallReply:
        """Run one grade call. Raises ``StopCall`` (and the worker is dead) on any failure."""
        output = _Output(self.max_output)
        self._drain(_Output(0), limit=_DRAIN_CHUNKS)  # a stray thread's prints belong to nobody
        deadline = time.monotonic() + timeout_s
        try:
            for with_source in (digest not in self.known, True):
                self._calls += 1
                head = b'{"id":%d,"hash":"%s"' % (self._calls, digest.encode())
                if with_source:
                    head += b',"source":' + source_json
                    self.known.add(digest)
                body = head + inputs
                reply = self._exchange(
                    _HEADER.pack(len(body)) + body, timeout_s, cancel, output, deadline=deadline
                )
                if reply.get("id") != self._calls:
                    raise self._stop("crash", "the worker's reply does not match the request")
                if not reply.get("need_source"):
                    return self._parse(reply, output)
                self.known.discard(digest)  # evicted from the worker's cache: send it again
            raise self._stop("crash", "the worker asked for the grader's source twice")
        except StopCall as stop:
            stop.output = output.text()
            raise
        except BaseException:
            self.terminate()  # interrupted half-way: the protocol state is unknown
            self._dead = True
            raise

    def _parse(self, reply: dict[str, Any], output: _Output) -> CallReply:
        kind, score, error = reply.get("kind"), reply.get("score"), reply.get("error")
        valid = (
            isinstance(score, float | int)
            and not isinstance(score, bool)
            and math.isfinite(score)
            and (kind is None or (kind in _KINDS and isinstance(error, str)))
        )
        if not valid:
            raise self._stop("crash", "the worker sent a malformed reply")
        if kind is not None:
            return CallReply(0.0, error, kind, output.text())
        return CallReply(float(score), None, None, output.text())  # type: ignore[arg-type]

    def _exchange(
        self,
        request: bytes | None,
        timeout_s: float,
        cancel: threading.Event | None,
        output: _Output,
        *,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Write ``request``, drain output, and return the next reply frame before the deadline.

        ``deadline`` (monotonic) defaults to ``timeout_s`` from now; ``timeout_s`` is what a
        timeout's message reports.
        """
        if deadline is None:
            deadline = time.monotonic() + timeout_s
        poller = select.poll()  # not select(): fds above 1024 are common in big processes
        pending = memoryview(request or b"")
        if pending:
            poller.register(self.request_fd, select.POLLOUT)
        poller.register(self.reply_fd, select.POLLIN)
        poller.register(self.output_fd, select.POLLIN)
        buffer = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._stop("timeout", f"timed out after {timeout_s:.1f} s")
            if cancel is not None and cancel.is_set():
                raise self._stop("crash", "cancelled by the caller")
            for fd, _ in poller.poll(math.ceil(min(remaining, _TICK_S) * 1000)):
                if fd == self.output_fd:
                    if not self._drain(output, limit=_DRAIN_CHUNKS):
                        poller.unregister(fd)
                elif fd == self.request_fd:
                    try:
                        pending = pending[os.write(fd, pending) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: it died; the reply pipe's EOF tells how
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(fd)
                else:
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise self._died(output)
                    buffer += chunk
                    frame = self._frame(buffer)
                    if frame is not None:
                        # The worker flushed its prints before replying: they are in the pipe.
                        self._drain(output, limit=_DRAIN_CHUNKS * 4)
                        try:
                            message = json.loads(frame)
                        except ValueError:
                            message = None
                        if not isinstance(message, dict):
                            raise self._stop("crash", "the worker sent a malformed reply")
                        return message

    def _frame(self, buffer: bytearray) -> bytes | None:
        if len(buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        if size > _MAX_REPLY:
            raise self._stop("crash", "the worker sent a malformed reply")
        if len(buffer) < _HEADER.size + size:
            return None
        if len(buffer) > _HEADER.size + size:
            raise self._stop("crash", "the worker sent more than one reply")
        return bytes(buffer[_HEADER.size :])

    def _drain(self, output: _Output, *, limit: int) -> bool:
        """Read what the grader printed so far; False at end of file."""
        for _ in range(limit):
            try:
                chunk = os.read(self.output_fd, _CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            output.feed(chunk)
        return True

    # --- death and cleanup -------------------------------------------------------------------

    def _stop(self, kind: str, error: str) -> StopCall:
        self.terminate()
        self._dead = True
        return StopCall(kind, error)

    def _died(self, output: _Output) -> StopCall:
        status = self._exit_status(grace=1.0)
        self._drain(output, limit=_DRAIN_CHUNKS * 4)
        self.terminate()
        self._dead = True
        if status is None:
            return StopCall("crash", "the worker closed its result pipe during the call")
        if status == _UNKNOWN_STATUS:
            return StopCall("crash", "the worker exited during the call (its status was lost)")
        if status >= 0:
            return StopCall(
                "crash",
                f"the worker exited with status {status} during the call "
                "(did the grader call os._exit()?)",
            )
        signum = -status
        name = _signal_name(signum)
        if signum == signal.SIGKILL:
            return StopCall("memory", f"the worker was killed by {name} (out of memory?)")
        if signum == getattr(signal, "SIGXCPU", None):
            return StopCall("timeout", f"the grader used up its CPU-time backstop ({name})")
        return StopCall(
            "crash", f"the worker crashed with {name} (a segfault in ctypes or a C extension?)"
        )

    def _exit_status(self, *, grace: float) -> int | None:
        """Wait up to ``grace`` s for the exit status without reaping, so its pgid stays ours."""
        deadline = time.monotonic() + grace
        while True:
            if hasattr(os, "waitid"):
                try:
                    info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:  # reaped by someone else's waitpid(-1): never killpg it
                    with self._lock:
                        self._reaped = True
                    return _UNKNOWN_STATUS
                if info is not None and info.si_pid:
                    exited = info.si_code == os.CLD_EXITED
                    return info.si_status if exited else -info.si_status
            else:  # pragma: no cover - macOS without waitid reaps; killpg is skipped after
                code = self.proc.poll()
                if code is not None:
                    with self._lock:
                        self._reaped = True
                    return code
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def alive(self) -> bool:
        """True if the process has not exited (checked without reaping it)."""
        return not self._dead and self._exit_status(grace=0.0) is None

    def usable(self) -> bool:
        """True if the worker can take another call."""
        return not self._dead

    def terminate(self) -> None:
        """Kill the worker and everything it started. Safe from any thread; idempotent."""
        with self._lock:
            if self._reaped:
                return
            # Before reaping, the (possibly zombie) worker pins its pid, so this group is ours.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    def dispose(self) -> None:
        """Kill, reap, close the pipes and delete the temporary home. Idempotent."""
        self.terminate()
        self._dead = True
        with self._lock:
            if self._disposed:
                return
            self._disposed = True
            if not self._reaped:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
                self._reaped = True
        for fd in (self.request_fd, self.reply_fd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.home, ignore_errors=True)

    def abandon(self) -> None:
        """In a forked child: close our copies of the pipes, leave the parent's process alone."""
        self._dead = self._disposed = self._reaped = True
        for fd in (self.request_fd, self.reply_fd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _environment(home: str) -> dict[str, str]:
    """A clean environment: no caller variables beyond a harmless few, so no secrets."""
    env = {name: os.environ[name] for name in _PASSTHROUGH_ENV if name in os.environ}
    nltk_data = os.path.expanduser("~/nltk_data")
    if "NLTK_DATA" not in env and os.path.isdir(nltk_data):
        # HOME moves to the temporary directory, so keep NLTK's per-user corpora findable
        # (OpenAI's grader image ships punkt, stopwords and wordnet).
        env["NLTK_DATA"] = nltk_data
    env.update(
        HOME=home,
        TMPDIR=home,
        # Graders run one per core already; BLAS thread pools would oversubscribe and inflate
        # the address space RLIMIT_AS counts.
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def spawn(memory_mb: int, timeout_s: float, *, max_output: int = 64_000) -> Worker:
    """Start a worker and wait for its hello.

    Raises:
        RLFTError: The process could not start, or did not say hello within 30 s.
    """
    home = tempfile.mkdtemp(prefix="rlft-grader-")
    fds: list[int] = []
    try:
        # os.pipe() fds are non-inheritable, so workers spawned by other threads never hold them.
        request_r, request_w = os.pipe()
        fds += (request_r, request_w)
        reply_r, reply_w = os.pipe()
        fds += (reply_r, reply_w)
        output_r, output_w = os.pipe()
        fds += (output_r, output_w)
        argv = [
            sys.executable,
            "-I",
            _SCRIPT,
            str(request_r),
            str(reply_w),
            str(memory_mb),
            repr(float(timeout_s)),
            str(_CACHE_SIZE),
        ]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            pass_fds=(request_r, reply_w),
            cwd=home,
            env=_environment(home),
            start_new_session=True,  # its own process group: killpg takes its children too
        )
    except OSError as exc:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(home, ignore_errors=True)
        raise RLFTError(
            f"could not start a python grader worker ({sys.executable}): {exc}"
        ) from exc
    for fd in (request_r, reply_w, output_w):  # the child's ends
        os.close(fd)
    for fd in (request_w, reply_r, output_r):
        os.set_blocking(fd, False)
    worker = Worker(
        proc,
        request_fd=request_w,
        reply_fd=reply_r,
        output_fd=output_r,
        home=home,
        max_output=max_output,
    )
    output = _Output(4000)
    try:
        hello = worker._exchange(None, _START_TIMEOUT_S, None, output)
        if hello.get("ready") is not True:
            raise worker._stop("crash", "the worker did not say hello")
    except StopCall as stop:
        worker.dispose()
        raise RLFTError(
            f"the python grader worker failed to start: {stop.error}\n{output.text()}".rstrip()
        ) from None
    return worker
