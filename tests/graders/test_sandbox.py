"""The python grader sandbox: build-time checks, fail-closed scoring, isolation and the pool."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pydantic
import pytest

from rlft.exceptions import GraderValidationError, UsageError
from rlft.graders._sandbox import pool as pool_module
from rlft.graders._sandbox.pool import (
    SandboxLimits,
    SandboxPool,
    SandboxResult,
    check_source,
    default_pool,
)

pytestmark = pytest.mark.anyio

LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=512, max_output_bytes=2000)
RATIO = "def grade(sample, item):\n    return len(sample['output_text']) / item['n']\n"
# Which worker process served a call: a random number drawn once per worker (inside the jail
# every worker is PID 2, so the pid cannot tell them apart).
TOKEN = "import random\nTOKEN = random.randrange(1, 2**50)\ndef grade(s, i):\n    return TOKEN\n"


def src(body: str) -> str:
    return textwrap.dedent(body).lstrip()


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    """One pool for the module: each test runs in its own event loop, so this also checks that
    a pool serves calls from many loops."""
    shared = SandboxPool(workers=2, limits=LIMITS)
    yield shared
    shared.close()


@pytest.fixture
def fast_pool() -> Iterator[SandboxPool]:
    """One worker and a 1 s timeout, for the slow failure modes."""
    small = SandboxPool(workers=1, limits=LIMITS.model_copy(update={"timeout_s": 1.0}))
    yield small
    small.close()


async def assert_serves(pool: SandboxPool) -> None:
    """The pool still grades correctly after a bad call."""
    result = await pool.run(RATIO, {"output_text": "abc"}, {"n": 4})
    assert (result.score, result.error_kind, result.error) == (0.75, None, None)


def record_spawns(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every worker the pools start from now on, in order (their host-side processes)."""
    started: list[Any] = []
    real = pool_module.spawn

    def spy(*args: Any, **kwargs: Any) -> Any:
        worker = real(*args, **kwargs)
        started.append(worker)
        return worker

    monkeypatch.setattr(pool_module, "spawn", spy)
    return started


def family(pid: int) -> set[int]:
    """``pid`` and all its descendants (bubblewrap, the jail's init, the worker)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(") ", 1)[1].split()[1])
    found, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.update(children)
        frontier += children
    return found


def all_gone(pids: set[int]) -> bool:
    return all(gone(pid) for pid in pids)


def wait_gone(pids: set[int], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not all_gone(pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # an orphan reparented to a PID 1 that never reaps stays a zombie: that is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


# --- check_source ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        RATIO,
        "def grade(sample: dict, item: dict) -> float:\n    return 1.0\n",
        "def grade(sample, item, weight=1.0, *, scale=2):\n    return weight\n",
        "def grade(*args):\n    return 1.0\n",
        "def grade(sample, /, item):\n    return 1.0\n",
        "def my_grader(sample, item):\n    return 1.0\n\n\ngrade = my_grader\n",
        "import functools\ndef g(a, b, c):\n    return c\ngrade = functools.partial(g, c=1.0)\n",
    ],
    ids=["plain", "annotated", "defaults", "varargs", "posonly", "alias", "partial"],
)
def test_check_source_accepts_graders(source: str) -> None:
    check_source(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def grade(sample, item):\n    return (1.0\n", "line 2"),
        ("def grade(sample item):\n    return 1.0\n", "line 1"),
        ("x = 1\nreturn x\n", "line 2, column 1: 'return' outside function"),
        ("def score(sample, item):\n    return 1.0\n", "no top-level `def grade(sample, item)`"),
        ("class Grade:\n    def grade(self, sample, item):\n        return 1.0\n", "no top-level"),
        ("async def grade(sample, item):\n    return 1.0\n", "make it a plain `def`"),
        ("def grade(sample):\n    return 1.0\n", "line 1: grade(sample) must take two"),
        ("def grade(a, b, c):\n    return 1.0\n", "must take two positional arguments"),
        ("def grade(a, b, *, c):\n    return 1.0\n", "must take two positional arguments"),
        ("x = 1\n\ndef f(sample):\n    return 1.0\ngrade = f\n", "line 3: f(sample)"),
        ("def grade(sample, item):\n    return 1.0\ngrade = None\n", None),  # checked at runtime
    ],
)
def test_check_source_rejects_what_cannot_run(source: str, expected: str | None) -> None:
    if expected is None:
        check_source(source)
        return
    with pytest.raises(GraderValidationError) as info:
        check_source(source, path="graders.code.source")
    assert info.value.path == "graders.code.source"
    assert str(info.value).startswith("graders.code.source: ")
    assert expected in str(info.value)


def test_check_source_counts_utf8_bytes_not_characters() -> None:
    limits = SandboxLimits(max_source_bytes=200)
    body = "def grade(sample, item):\n    return 1.0\n"
    check_source(body + "#" + "e" * (199 - len(body)), limits=limits)  # exactly 200 bytes
    too_big = body + "#" + "é" * 90  # 130 characters, 221 bytes
    with pytest.raises(GraderValidationError, match="221 bytes; the limit is 200"):
        check_source(too_big, limits=limits)


def test_limits_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        SandboxLimits(timeout_s=0)
    with pytest.raises(pydantic.ValidationError):
        SandboxLimits(memory_mb=1)
    with pytest.raises(UsageError, match="at least 1 worker"):
        SandboxPool(workers=0)
    assert SandboxLimits() == SandboxLimits(
        timeout_s=120.0, memory_mb=2048, max_source_bytes=256_000, max_output_bytes=64_000
    )


# --- scoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "n"), [("abc", 4), ("", 3), ("hello world", 2)])
async def test_scores_come_from_sample_and_item(pool: SandboxPool, text: str, n: int) -> None:
    result = await pool.run(RATIO, {"output_text": text}, {"n": n})
    assert isinstance(result, SandboxResult)
    assert result.ok
    assert result.score == len(text) / n
    assert result.latency_s > 0


@pytest.mark.parametrize(
    ("expression", "score"),
    [
        ("3", 3.0),
        ("-0.25", -0.25),  # not clamped: that is the engine's job
        ("numpy.float32(0.5)", 0.5),
        ("numpy.int64(7)", 7.0),
        ("fractions.Fraction(1, 8)", 0.125),
    ],
)
async def test_real_numbers_are_scores(pool: SandboxPool, expression: str, score: float) -> None:
    source = f"import fractions, numpy\ndef grade(sample, item):\n    return {expression}\n"
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (score, None)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("None", "returned None"),
        ("True", "returned a bool (True); return float(...)"),
        ("numpy.bool_(False)", "returned a bool"),
        ("'0.5'", "returned '0.5'; return a float"),
        ("float('nan')", "returned nan; return a finite float"),
        ("-float('inf')", "returned -inf"),
        ("[1.0]", "returned list"),
        ("{'score': 1.0}", "returned dict"),
        ("complex(1, 0)", "returned complex"),
    ],
)
async def test_other_returns_fail_closed(pool: SandboxPool, expression: str, message: str) -> None:
    source = f"import numpy\ndef grade(sample, item):\n    return {expression}\n"
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (0.0, "invalid_return")
    assert result.error is not None and message in result.error


async def test_exception_gives_the_traceback_tail(pool: SandboxPool) -> None:
    source = src(
        """
        def helper(item):
            return item["missing"]

        def grade(sample, item):
            print("before the error")
            return helper(item)
        """
    )
    result = await pool.run(source, {}, {"present": 1})
    assert (result.score, result.error_kind) == (0.0, "exception")
    assert result.error is not None
    assert "line 2, in helper" in result.error and "KeyError: 'missing'" in result.error
    assert "_sandbox_worker" not in result.error  # the worker's own frames are cut
    assert result.stdout == "before the error\n"
    await assert_serves(pool)


async def test_recursion_error_fails_closed(pool: SandboxPool) -> None:
    source = (
        "def down(n):\n    return down(n + 1)\n\ndef grade(sample, item):\n    return down(0)\n"
    )
    result = await pool.run(source, {}, {})
    assert result.error_kind == "exception"
    assert result.error is not None and "RecursionError" in result.error
    await assert_serves(pool)


@pytest.mark.parametrize(
    ("source", "kind", "message"),
    [
        ("def grade(sample, item):\n    return (\n", "syntax", "line 2"),
        ("def score(sample, item):\n    return 1.0\n", "no_grade_function", "no top-level"),
        ("def grade(sample, item):\n    return 1.0\ngrade = 3\n", "no_grade_function", ""),
        ("import not_a_real_module_xyz\ndef grade(s, i):\n    return 1.0\n", "exception", ""),
    ],
)
async def test_bad_sources_fail_closed(
    pool: SandboxPool, source: str, kind: str, message: str
) -> None:
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (0.0, kind)
    assert result.error is not None and message in result.error
    await assert_serves(pool)


async def test_oversized_source_fails_closed_in_run() -> None:
    async with SandboxPool(workers=1, limits=SandboxLimits(max_source_bytes=100)) as small:
        result = await small.run(RATIO + "#" * 100, {"output_text": ""}, {"n": 1})
    assert result.error_kind == "syntax"
    assert result.error is not None and "the limit is 100" in result.error


# --- resource limits and crashes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["while True:\n        pass", "import time\n    time.sleep(60)"],
    ids=["busy-loop", "sleep"],
)
async def test_timeout_kills_and_replaces_the_worker(
    fast_pool: SandboxPool, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = record_spawns(monkeypatch)
    started = time.monotonic()
    result = await fast_pool.run(f"def grade(sample, item):\n    {body}\n", {}, {})
    elapsed = time.monotonic() - started
    assert (result.score, result.error_kind, result.error) == (
        0.0,
        "timeout",
        "timed out after 1.0 s",
    )
    assert 1.0 <= elapsed < 3.0
    assert gone(spawned[0].pid)  # bubblewrap and with it the whole jail
    await assert_serves(fast_pool)


@pytest.mark.parametrize(
    "body",
    [
        "blob = bytearray(8 * 1024 ** 3)",
        "chunks = []\n    while True:\n        chunks.append(bytearray(16 * 1024 * 1024))",
    ],
    ids=["one-huge", "gradual"],
)
async def test_memory_limit(pool: SandboxPool, body: str) -> None:
    result = await pool.run(f"def grade(sample, item):\n    {body}\n    return 1.0\n", {}, {})
    assert (result.score, result.error_kind) == (0.0, "memory")
    assert result.error is not None and "512 MB memory limit" in result.error
    await assert_serves(pool)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys\n    sys.exit(3)", "called sys.exit(3)"),
        ("import os\n    os._exit(0)", "exited with status 0"),
        ("import ctypes\n    ctypes.string_at(0)", "crashed with SIGSEGV"),
        ("import os, signal\n    os.kill(os.getpid(), signal.SIGABRT)", "SIGABRT"),
    ],
    ids=["sys.exit", "os._exit", "segfault", "abort"],
)
async def test_crashes_fail_closed(pool: SandboxPool, body: str, message: str) -> None:
    result = await pool.run(f"def grade(sample, item):\n    {body}\n", {}, {})
    assert (result.score, result.error_kind) == (0.0, "crash")
    assert result.error is not None and message in result.error
    await assert_serves(pool)


async def test_segfault_traceback_is_in_the_output(pool: SandboxPool) -> None:
    result = await pool.run("import ctypes\ndef grade(s, i):\n    ctypes.string_at(0)\n", {}, {})
    assert "Segmentation fault" in result.stdout and "in grade" in result.stdout


# --- batches ------------------------------------------------------------------------------------


async def test_a_batch_blames_only_the_rows_that_failed(fast_pool: SandboxPool) -> None:
    source = src(
        """
        import os, time
        def grade(sample, item):
            if item["k"] == "hang":
                time.sleep(60)
            if item["k"] == "exit":
                os._exit(3)
            if item["k"] == "raise":
                raise ValueError("bad row")
            return len(sample["output_text"])
        """
    )
    kinds = ["ok", "hang", "ok", "exit", "raise", "ok"]
    samples = [{"output_text": "x" * n} for n in range(6)]
    results = await fast_pool.run_batch(source, samples, [{"k": k} for k in kinds])
    assert [(r.score, r.error_kind) for r in results] == [
        (0.0, None),
        (0.0, "timeout"),
        (2.0, None),
        (0.0, "crash"),
        (0.0, "exception"),
        (5.0, None),
    ]
    assert results[3].error is not None and "status 3" in results[3].error
    await assert_serves(fast_pool)


async def test_the_timeout_is_per_row_in_a_batch(fast_pool: SandboxPool) -> None:
    source = "import time\ndef grade(sample, item):\n    time.sleep(0.4)\n    return 1.0\n"
    started = time.monotonic()
    results = await fast_pool.run_batch(source, [{}] * 4, [{}] * 4)  # 1.6 s, 1 s per row
    assert [r.error_kind for r in results] == [None] * 4
    assert time.monotonic() - started >= 1.6


async def test_huge_errors_are_cut_not_fatal_to_the_batch(
    fast_pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = record_spawns(monkeypatch)
    source = "import sys\ndef grade(sample, item):\n    sys.exit('\u00e9' * 1_000_000)\n"
    results = await fast_pool.run_batch(source, [{}] * 40, [{}] * 40)
    assert {r.error_kind for r in results} == {"crash"}
    assert all(r.error is not None and len(r.error) <= 2003 for r in results)
    assert len(spawned) == 1  # one worker graded all 40 rows: the reply was not refused


async def test_a_module_that_fails_fails_every_row_once(
    fast_pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = record_spawns(monkeypatch)
    source = "import os\nos._exit(4)\ndef grade(sample, item):\n    return 1.0\n"
    results = await fast_pool.run_batch(source, [{}] * 20, [{}] * 20)
    assert {(r.score, r.error_kind) for r in results} == {(0.0, "crash")}
    assert len(spawned) == 1  # not one worker per row
    with pytest.raises(UsageError, match="2 samples but 1 items"):
        await fast_pool.run_batch(source, [{}, {}], [{}])
    assert await fast_pool.run_batch(source, [], []) == []


# --- output -------------------------------------------------------------------------------------


async def test_megabytes_of_prints_are_truncated_not_fatal(pool: SandboxPool) -> None:
    source = src(
        """
        import sys
        def grade(sample, item):
            print("first line")
            for _ in range(3000):
                print("x" * 1000)
            sys.stderr.write("stderr too\\n")
            return 0.5
        """
    )
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (0.5, None)
    kept, note = result.stdout.rsplit("\n[rlft: ", 1)
    assert kept.startswith("first line\nxxx") and len(kept.encode()) == 2000
    dropped = len("first line\n") + 3000 * 1001 + len("stderr too\n") - 2000
    assert note == f"{dropped:,} more bytes of output dropped (limit 2,000)]"


async def test_writes_to_fd_1_cannot_corrupt_the_protocol(pool: SandboxPool) -> None:
    source = src(
        """
        import json, os, struct
        def grade(sample, item):
            fake = json.dumps({"id": 1, "score": 1.0}).encode()
            os.write(1, struct.pack(">I", len(fake)) + fake)
            os.write(2, b"to fd 2\\n")
            return 0.25
        """
    )
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (0.25, None)
    assert '{"id": 1, "score": 1.0}' in result.stdout and "to fd 2" in result.stdout


# --- isolation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["auto", "off"])
async def test_environment_is_clean_and_home_is_temporary(
    monkeypatch: pytest.MonkeyPatch, isolation: Any
) -> None:
    monkeypatch.setenv("RLFT_TEST_SECRET", "sk-canary-0123456789")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-canary")
    source = src(
        """
        import json, os, sys
        def grade(sample, item):
            print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path,
                              "isolated": sys.flags.isolated}))
            return 1.0
        """
    )
    async with SandboxPool(workers=1, limits=LIMITS, isolation=isolation) as fresh:
        result = await fresh.run(source, {}, {})
        jailed = fresh.jailed
    assert jailed == (isolation == "auto")  # CI installs bubblewrap: the jail is there
    seen = json.loads(result.stdout)
    assert "sk-canary" not in result.stdout and "RLFT_TEST_SECRET" not in seen["env"]
    assert "/nonexistent-canary" not in seen["path"] and seen["isolated"] == 1
    home = seen["cwd"]
    assert seen["env"]["HOME"] == seen["env"]["TMPDIR"] == home != os.getcwd()
    if jailed:
        assert home == "/tmp"  # a private tmpfs, gone with the jail
    else:
        assert Path(home).name.startswith("rlft-grader-")
        assert not await anyio.Path(home).exists()  # removed with the worker


async def test_caller_state_is_out_of_reach(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rlft_sandbox_canary", types.ModuleType("rlft_sandbox_canary"))
    source = (
        "import sys\ndef grade(s, i):\n    return float('rlft_sandbox_canary' in sys.modules)\n"
    )
    result = await pool.run(source, {}, {})
    assert (result.score, result.error_kind) == (0.0, None)


async def test_network_is_denied(pool: SandboxPool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        attempts = {
            "socket": f"import socket\n    socket.create_connection(('127.0.0.1', {port}), 1)",
            "urllib": f"import urllib.request\n    urllib.request.urlopen('http://127.0.0.1:{port}/')",
            "dns": "import socket\n    socket.getaddrinfo('localhost', 80)",
        }
        for name, body in attempts.items():
            result = await pool.run(f"def grade(sample, item):\n    {body}\n", {}, {})
            assert result.error_kind == "exception", name
            assert result.error is not None and "network access is disabled" in result.error
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected


async def test_local_sockets_still_work_for_asyncio(pool: SandboxPool) -> None:
    source = src(
        """
        import asyncio
        async def double(x):
            await asyncio.sleep(0)
            return 2 * x
        def grade(sample, item):
            return asyncio.run(double(item["x"]))
        """
    )
    result = await pool.run(source, {}, {"x": 0.25})
    assert (result.score, result.error_kind) == (0.5, None)


# --- the pool -----------------------------------------------------------------------------------


async def test_workers_are_reused_and_graders_compiled_once() -> None:
    counter = (
        "calls = 0\ndef grade(sample, item):\n    global calls\n    calls += 1\n    return calls\n"
    )
    async with SandboxPool(workers=1, limits=LIMITS) as single:
        tokens = {(await single.run(TOKEN, {}, {})).score for _ in range(5)}
        scores = [(await single.run(counter, {}, {})).score for _ in range(3)]
        other = await single.run(counter + "\n# another grader\n", {}, {})
    assert len(tokens) == 1  # one process served every call of that grader
    assert scores == [1.0, 2.0, 3.0]  # the module ran once; its state persists in the worker
    assert other.score == 1.0  # a different source gets its own process and globals


async def test_a_worker_that_died_while_idle_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = record_spawns(monkeypatch)
    stray = src(
        """
        import os, random, threading
        TOKEN = random.randrange(1, 2**50)
        def grade(sample, item):
            if item.get("die"):
                threading.Timer(0.1, os._exit, (0,)).start()  # a stray thread, after the call
            return TOKEN
        """
    )
    async with SandboxPool(workers=1, limits=LIMITS) as single:
        first = await single.run(stray, {}, {"die": True})
        assert first.ok
        pid = spawned[0].pid
        await anyio.to_thread.run_sync(os.waitid, os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        result = await single.run(stray, {}, {})  # not blamed on the next, innocent call
    assert result.ok and result.score != first.score and len(spawned) == 2


async def test_user_nltk_data_stays_findable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nltk_data").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NLTK_DATA", raising=False)
    source = "import os\ndef grade(s, i):\n    print(os.environ.get('NLTK_DATA'))\n    return 1.0\n"
    async with SandboxPool(workers=1, limits=LIMITS) as fresh:
        result = await fresh.run(source, {}, {})
    assert result.stdout == f"{tmp_path / 'nltk_data'}\n"


async def test_graders_never_share_a_worker_and_idle_ones_are_evicted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawned = record_spawns(monkeypatch)
    counter = "calls = 0\ndef grade(s, i):\n    global calls\n    calls += 1\n    return calls\n"
    others = [f"def grade(s, i):\n    return {n}.0\n" for n in range(4)]
    async with SandboxPool(workers=1, limits=LIMITS) as single:  # at most 4 workers alive
        first = [(await single.run(counter, {}, {})).score for _ in range(2)]
        assert [(await single.run(o, {}, {})).score for o in others] == [0.0, 1.0, 2.0, 3.0]
        assert len(single._live) == 4
        again = (await single.run(counter, {}, {})).score
    assert first == [1.0, 2.0] and again == 1.0  # evicted (least recently used): fresh state
    assert len(spawned) == 6 and len({w.digest for w in spawned}) == 5
    assert all(gone(w.pid) for w in spawned)


async def test_concurrent_calls_from_threads_and_event_loops() -> None:
    async with SandboxPool(workers=2, limits=LIMITS) as shared:
        scores: dict[tuple[int, int], float] = {}
        pids: set[float] = set()

        async def one_loop(thread: int) -> None:
            async def one(i: int) -> None:
                result = await shared.run(RATIO, {"output_text": "x" * i}, {"n": thread + 1})
                scores[thread, i] = result.score
                pids.add((await shared.run(TOKEN, {}, {})).score)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)

        threads = [threading.Thread(target=anyio.run, args=(one_loop, t)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert scores == {(t, i): i / (t + 1) for t in range(4) for i in range(8)}
    assert 1 <= len(pids) <= 2


async def test_workers_outlive_the_thread_that_started_them(pool: SandboxPool) -> None:
    """bubblewrap's die-with-parent follows the starting *thread*: a short-lived caller thread
    (an event loop in a thread, as TRL's) must not take the jailed worker down with it."""
    source = TOKEN + "# outlive\n"
    info = pool_module._inspect_source(source, LIMITS.max_source_bytes)
    first: list[Any] = []
    native: list[int] = []

    def call() -> None:  # grades in this very thread, so this thread starts the worker
        native.append(threading.get_native_id())
        first.extend(pool._run_blocking(info, [({}, {})], pool.jailed, threading.Event()))

    thread = threading.Thread(target=call)
    thread.start()
    await anyio.to_thread.run_sync(thread.join)
    deadline = time.monotonic() + 10
    while await anyio.Path(f"/proc/self/task/{native[0]}").exists():  # the thread has exited
        assert time.monotonic() < deadline
        await anyio.sleep(0.01)
    second = await pool.run(source, {}, {})
    assert first[0][2] is None and (second.score, second.error) == (first[0][0], None)


async def test_called_like_trl_from_a_foreign_loop_thread(pool: SandboxPool) -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        coro = pool.run(RATIO, {"output_text": "ab"}, {"n": 8})
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        result = await anyio.to_thread.run_sync(future.result, 30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=5)
        loop.close()
    assert (result.score, result.error_kind) == (0.25, None)


async def test_cancelling_a_call_frees_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = record_spawns(monkeypatch)
    async with SandboxPool(workers=1, limits=LIMITS.model_copy(update={"timeout_s": 30})) as one:
        started = time.monotonic()
        with anyio.move_on_after(0.3):
            await one.run("import time\ndef grade(s, i):\n    time.sleep(30)\n", {}, {})
        assert time.monotonic() - started < 2
        await assert_serves(one)  # the only slot was freed and its worker killed
        assert time.monotonic() - started < 5
        assert gone(spawned[0].pid)


async def test_close_refuses_calls_and_kills_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = record_spawns(monkeypatch)
    pool = SandboxPool(workers=2, limits=LIMITS)
    await pool.run(TOKEN, {}, {})
    processes = family(spawned[0].pid)
    assert len(processes) >= 2 if pool.jailed else len(processes) == 1
    assert "1 started" in repr(pool)
    await pool.aclose()
    await pool.aclose()  # idempotent
    pool.close()
    assert pool.closed
    wait_gone(processes)  # killed at once; the kernel tears the jail down right after
    with pytest.raises(UsageError, match="closed"):
        await pool.run(RATIO, {"output_text": ""}, {"n": 1})


async def test_close_interrupts_calls_in_flight() -> None:
    pool = SandboxPool(workers=1, limits=LIMITS.model_copy(update={"timeout_s": 30}))
    threading.Timer(0.5, pool.close).start()
    started = time.monotonic()
    with pytest.raises(UsageError, match="closed"):
        await pool.run("import time\ndef grade(s, i):\n    time.sleep(30)\n", {}, {})
    assert time.monotonic() - started < 5


async def test_inputs_must_be_json_dicts(pool: SandboxPool) -> None:
    with pytest.raises(UsageError, match="sample must be a dict"):
        await pool.run(RATIO, ["not", "a", "dict"], {})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="item must be a dict"):
        await pool.run(RATIO, {}, ["n", 1])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="sample is not JSON-serialisable"):
        await pool.run(RATIO, {"output_text": {1, 2}}, {"n": 1})


async def test_item_values_json_cannot_carry_are_converted_or_left_out(pool: SandboxPool) -> None:
    import datetime
    import decimal

    import numpy

    class Image:  # stands in for a PIL image: nothing JSON can hold
        pass

    item = {
        "n": numpy.int64(4),
        "vector": numpy.arange(3),
        "when": datetime.datetime(2024, 5, 1, 12, 30),
        "price": decimal.Decimal("1.5"),
        "tags": {"a"},
        "image": Image(),
    }
    source = "def grade(s, i):\n    print(sorted(i.items()))\n    return 3 / i['n']\n"
    result = await pool.run(source, {"output_text": "abc"}, item)
    assert (result.score, result.error_kind) == (0.75, None)
    assert result.stdout.strip() == (
        "[('n', 4), ('price', 1.5), ('tags', ['a']), ('vector', [0, 1, 2]), "
        "('when', '2024-05-01T12:30:00')]"
    )


def test_default_pool_is_shared_and_recreated_after_close() -> None:
    first = default_pool()
    assert default_pool() is first and first.limits == SandboxLimits()
    assert first.workers >= 1
    first.close()
    second = default_pool()
    assert second is not first and not second.closed


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_workers_exit_when_the_parent_dies(tmp_path: Path, isolation: str) -> None:
    """A worker busy in a long sleep leaves within seconds of its parent being SIGKILLed."""
    marker = tmp_path / "pid"
    script = src(
        f"""
        import threading, time
        import anyio
        from rlft.graders._sandbox.pool import SandboxLimits, SandboxPool
        SOURCE = "import time\\ndef grade(sample, item):\\n    time.sleep(120)\\n"
        pool = SandboxPool(workers=1, limits=SandboxLimits(timeout_s=100), isolation={isolation!r})

        def report():  # once the worker is grading (its progress cell says row 0), say who it is
            while not pool._live or next(iter(pool._live))._cell[0] != 0:
                time.sleep(0.01)
            with open({str(marker)!r} + ".tmp", "w") as f:
                f.write(str(next(iter(pool._live)).pid))
            import os
            os.rename({str(marker)!r} + ".tmp", {str(marker)!r})

        threading.Thread(target=report, daemon=True).start()
        anyio.run(pool.run, SOURCE, {{}}, {{}})
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where an unjailed worker's home is made
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        processes = family(int(marker.read_text()))
        assert len(processes) >= (3 if isolation == "auto" else 1)  # bwrap, its init, python
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while not all_gone(processes):
            assert time.monotonic() < deadline, "the orphaned worker is still running"
            time.sleep(0.1)
        assert not list(tmp_path.glob("rlft-grader-*"))  # and it removed its temporary home
    finally:
        parent.kill()
        parent.wait()
