"""One grader worker process seen from the parent: spawn, one batch call over pipes, kill.

A ``Worker`` serves exactly one grader (one source digest) for its whole life, so graders never
share a process. It is used by one thread at a time (the pool hands it out from its idle lists);
``terminate()`` is the one method another thread may call, to kill it from ``close()``. The
protocol is described in ``worker``; the jail in ``jail``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import math
import mmap
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
from pathlib import Path
from typing import Any

from rlft.exceptions import RLFTError
from rlft.graders._sandbox import jail

__all__ = ["CallReply", "StopCall", "Worker", "spawn"]

_SCRIPT = str(Path(__file__).with_name("worker.py"))
_HEADER = struct.Struct(">I")
_START_TIMEOUT_S = 30.0  # a cold interpreter on a loaded machine can take seconds
_TICK_S = 0.25  # how often a waiting call checks for cancellation
_CHUNK = 1 << 16
_DRAIN_CHUNKS = 16  # read at most this much output per wake-up, so deadlines still get checked
_PIPE_SIZE = 1 << 20
_MAX_REPLY = 1 << 20  # a reply is small; more means the pipe carries garbage
_MAX_REPLY_ROW = 32 << 10  # plus this per row: an error's 2,000 characters, JSON-escaped
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NLTK_DATA")
_UNKNOWN_STATUS = 1 << 16  # exited, but another waitpid() took the status
_KINDS = frozenset(
    {"timeout", "memory", "crash", "exception", "invalid_return", "syntax", "no_grade_function"}
)


class StopCall(Exception):
    """A call ended without a reply: timeout, cancellation, or the worker died. It is dead now.

    ``index`` is the row of the batch the worker was grading (from the progress cell), or
    ``None`` when it died before its first row (while loading the grader's module).
    """

    def __init__(self, kind: str, error: str, output: str = "", index: int | None = None) -> None:
        super().__init__(error)
        self.kind: Any = kind
        self.error = error
        self.output = output
        self.index = index


CallReply = tuple[float, str | None, Any, str]
"""One row's result: score, error, error kind (one of the sandbox's, or None), output."""


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
    """A started worker process and the parent's ends of its three pipes and progress cell."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        request_fd: int,
        reply_fd: int,
        output_fd: int,
        progress: mmap.mmap,
        home: str,
        max_output: int,
        digest: str,
        jailed: bool,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.output_fd = output_fd
        self.progress = progress
        self._cell = memoryview(progress).cast("q")  # the row being graded; -1 while loading
        self.home = home
        self.max_output = max_output
        self.digest = digest
        """The one grader this worker may run: requests for any other source are refused."""
        self.jailed = jailed
        self.loaded = False  # the worker has been sent its grader's source
        self._calls = 0
        self._lock = threading.Lock()
        self._reaped = False
        self._dead = False
        self._disposed = False

    def __repr__(self) -> str:
        jail = " jailed" if self.jailed else ""
        return f"<sandbox worker pid={self.pid}{jail}{' dead' if self._dead else ''}>"

    # --- calls -----------------------------------------------------------------------------

    def call(
        self,
        digest: str,
        source_json: bytes,
        rows: bytes,
        count: int,
        timeout_s: float,
        cancel: threading.Event,
    ) -> list[CallReply]:
        """Grade ``count`` rows (``[[sample,item],...]`` as JSON) in one round trip.

        ``timeout_s`` is per row: the deadline moves whenever the worker starts another row.
        The batch's output goes with the first reply. Raises ``StopCall`` (and the worker is
        dead) on any failure; its ``index`` says which row was running.
        """
        if digest != self.digest:
            raise RuntimeError("a sandbox worker serves one grader only")  # the pool's bug
        output = _Output(self.max_output)
        self._drain(_Output(0), limit=_DRAIN_CHUNKS)  # a stray thread's prints belong to nobody
        self._calls += 1
        head = b'{"id":%d' % self._calls
        if not self.loaded:
            head += b',"source":' + source_json
            self.loaded = True
        body = head + b',"rows":' + rows + b"}"
        self._cell[0] = -1
        try:
            reply = self._exchange(
                _HEADER.pack(len(body)) + body,
                timeout_s,
                cancel,
                output,
                progress=True,
                max_reply=_MAX_REPLY + count * _MAX_REPLY_ROW,
            )
            if reply.get("id") != self._calls:
                raise self._stop("crash", "the worker's reply does not match the request")
            results = reply.get("results")
            if not isinstance(results, list) or len(results) != count:
                raise self._stop("crash", "the worker sent a malformed reply")
            parse = self._parse
            replies = [
                (result, None, None, "")
                if type(result) is float and math.isfinite(result)
                else parse(result)
                for result in results
            ]
        except StopCall as stop:
            stop.output = output.text()
            index = self._cell[0]
            stop.index = index if 0 <= index < count else None
            raise
        except BaseException:
            self.terminate()  # interrupted half-way: the protocol state is unknown
            self._dead = True
            raise
        text = output.text()
        if text and replies:
            first = replies[0]
            replies[0] = (first[0], first[1], first[2], text)
        return replies

    def _parse(self, result: Any) -> CallReply:
        if isinstance(result, float | int) and not isinstance(result, bool):
            if math.isfinite(result):
                return (float(result), None, None, "")
        elif (
            isinstance(result, list)
            and len(result) == 2
            and result[0] in _KINDS
            and isinstance(result[1], str)
        ):
            return (0.0, result[1], result[0], "")
        raise self._stop("crash", "the worker sent a malformed reply")

    def _exchange(
        self,
        request: bytes | None,
        timeout_s: float,
        cancel: threading.Event | None,
        output: _Output,
        *,
        progress: bool = False,
        max_reply: int = _MAX_REPLY,
    ) -> dict[str, Any]:
        """Write ``request``, drain output, and return the next reply frame before the deadline.

        The deadline is ``timeout_s`` from now; with ``progress`` it moves on each time the
        worker's progress cell says it started another row (checked at least every 0.25 s).
        """
        deadline = time.monotonic() + timeout_s
        row = self._cell[0]
        poller = select.poll()  # not select(): fds above 1024 are common in big processes
        pending = memoryview(request or b"")
        if pending:
            poller.register(self.request_fd, select.POLLOUT)
        poller.register(self.reply_fd, select.POLLIN)
        poller.register(self.output_fd, select.POLLIN)
        buffer = bytearray()
        while True:
            now = time.monotonic()
            if progress and self._cell[0] != row:
                row = self._cell[0]
                deadline = now + timeout_s
            remaining = deadline - now
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
                    frame = self._frame(buffer, max_reply)
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

    def _frame(self, buffer: bytearray, max_reply: int) -> bytes | None:
        if len(buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        if size > max_reply:
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
        if self.jailed and status > 128 and _signal_name(status - 128) != f"signal {status - 128}":
            status = 128 - status  # bubblewrap exits 128 + N when its child died of signal N
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
        self._close_progress()
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)

    def _close_progress(self) -> None:
        self._cell.release()
        with contextlib.suppress(BufferError, ValueError):
            self.progress.close()

    def abandon(self) -> None:
        """In a forked child: close our copies of the pipes, leave the parent's process alone."""
        self._dead = self._disposed = self._reaped = True
        for fd in (self.request_fd, self.reply_fd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._close_progress()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_spawner: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None
_spawner_lock = threading.Lock()


def _popen(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` from one thread that lives as long as the process.

    bubblewrap's ``--die-with-parent`` is ``PR_SET_PDEATHSIG``, which fires when the *thread*
    that started it exits; the threads that call the pool come and go (anyio recycles them).
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            executor = concurrent.futures.ThreadPoolExecutor(1, "rlft-sandbox-spawner")
            _spawner = (os.getpid(), executor)
        executor = _spawner[1]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **options)

    return executor.submit(start).result()


def _after_fork_in_child() -> None:
    global _spawner_lock, _spawner
    _spawner_lock = threading.Lock()
    _spawner = None  # the parent's spawner thread does not exist here


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _nltk_data() -> list[str]:
    """NLTK's corpora directories of the caller (``$NLTK_DATA``, else ``~/nltk_data``)."""
    if "NLTK_DATA" in os.environ:
        return [p for p in os.environ["NLTK_DATA"].split(os.pathsep) if p]
    nltk_data = os.path.expanduser("~/nltk_data")
    return [nltk_data] if os.path.isdir(nltk_data) else []


def _environment(home: str) -> dict[str, str]:
    """A clean environment: no caller variables beyond a harmless few, so no secrets."""
    env = {name: os.environ[name] for name in _PASSTHROUGH_ENV if name in os.environ}
    nltk_data = _nltk_data()
    if nltk_data:
        # HOME moves to the temporary directory, so keep NLTK's per-user corpora findable
        # (OpenAI's grader image ships punkt, stopwords and wordnet).
        env["NLTK_DATA"] = os.pathsep.join(nltk_data)
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


def spawn(
    memory_mb: int,
    timeout_s: float,
    *,
    digest: str,
    jailed: bool,
    max_output: int = 64_000,
    disk_mb: int = 1024,
) -> Worker:
    """Start a worker for the grader ``digest`` names, jailed or not, and wait for its hello.

    Raises:
        RLFTError: The process could not start, or did not say hello within 30 s.
    """
    home = "" if jailed else tempfile.mkdtemp(prefix="rlft-grader-")
    fds: list[int] = []
    progress: mmap.mmap | None = None
    try:
        # os.pipe() fds are non-inheritable, so workers spawned by other threads never hold them.
        request_r, request_w = os.pipe()
        fds += (request_r, request_w)
        reply_r, reply_w = os.pipe()
        fds += (reply_r, reply_w)
        for fd in (request_w, reply_w):  # a batch in one write where Linux allows (1 MiB)
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        output_r, output_w = os.pipe()
        fds += (output_r, output_w)
        # The progress cell: 8 shared bytes where the worker writes the row it is grading, so
        # a per-row timeout and a crash in a batch blame the right row without a message each.
        with tempfile.TemporaryFile() as cell:
            cell.truncate(8)
            progress = mmap.mmap(cell.fileno(), 8)
            progress_fd = os.dup(cell.fileno())  # non-inheritable, like the pipes
        fds.append(progress_fd)
        child_fds = [request_r, reply_w, progress_fd]
        script = _SCRIPT
        prefix: list[str] = []
        if jailed:
            seccomp_r, seccomp_w = os.pipe()
            fds += (seccomp_r, seccomp_w)
            os.write(seccomp_w, jail.seccomp_bpf())  # a few hundred bytes: fits the pipe
            child_fds.append(seccomp_r)
            prefix = jail.jail_argv(
                script=_SCRIPT,
                pass_fds=tuple(child_fds),
                seccomp_fd=seccomp_r,
                disk_mb=disk_mb,
                read_only=tuple(p for p in _nltk_data() if os.path.isdir(p)),
            )
            script = jail.JAIL_SCRIPT
        argv = [
            *prefix,
            sys.executable,
            "-I",
            script,
            str(request_r),
            str(reply_w),
            str(progress_fd),
            str(memory_mb),
            repr(float(timeout_s)),
            digest,
        ]
        proc = _popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            pass_fds=tuple(child_fds),
            cwd=home or "/",
            env=_environment(jail.JAIL_HOME if jailed else home),
            start_new_session=True,  # its own process group: killpg takes its children too
        )
    except OSError as exc:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if progress is not None:
            progress.close()
        if home:
            shutil.rmtree(home, ignore_errors=True)
        raise RLFTError(
            f"could not start a python grader worker ({sys.executable}): {exc}"
        ) from exc
    for fd in fds:  # all but the parent's three ends
        if fd not in (request_w, reply_r, output_r):
            os.close(fd)
    for fd in (request_w, reply_r, output_r):
        os.set_blocking(fd, False)
    worker = Worker(
        proc,
        request_fd=request_w,
        reply_fd=reply_r,
        output_fd=output_r,
        progress=progress,
        home=home,
        digest=digest,
        jailed=jailed,
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
