"""Hostile python graders against the OS-level jail: each attack class fails, the pool serves on.

Each attack is one that worked against the unjailed sandbox (issue 15.1). A grader reports what
it managed as JSON on stdout; the test asserts that nothing got through. CI installs bubblewrap
(scripts/setup.sh), so none of this is skipped: the first test fails if the jail is missing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.exceptions import UsageError
from rlft.graders._sandbox import jail
from rlft.graders._sandbox import pool as pool_module
from rlft.graders._sandbox.pool import (
    SandboxIsolationWarning,
    SandboxLimits,
    SandboxPool,
    resolve_isolation,
)

pytestmark = pytest.mark.anyio

LIMITS = SandboxLimits(timeout_s=10.0, memory_mb=512, max_output_bytes=20_000)
RATIO = "def grade(sample, item):\n    return len(sample['output_text']) / item['n']\n"
SECRET = "sk-jail-canary-5f0c2a"
PYTHON = g.Python(name="py", source="def grade(sample, item):\n    return 1.0\n")
MULTI = g.Multi(name="m", graders={"py": PYTHON}, calculate_output="py")

# Runs each attempt and prints {name: "OK <result>" | "<exception>"} as one JSON line.
ATTEMPTS = """
import json

def attempt(results, name, action):
    try:
        results[name] = "OK " + repr(action())[:200]
    except BaseException as exc:
        results[name] = f"{type(exc).__name__}: {exc}"[:200]
"""


def grader(body: str) -> str:
    return ATTEMPTS + textwrap.dedent(body)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    jailed = SandboxPool(workers=2, limits=LIMITS, isolation="required")
    yield jailed
    jailed.close()


async def attacks(pool: SandboxPool, source: str, item: dict[str, Any]) -> dict[str, str]:
    result = await pool.run(source, {"output_text": ""}, item)
    assert result.error is None, result.error
    report: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


async def assert_serves(pool: SandboxPool) -> None:
    result = await pool.run(RATIO, {"output_text": "abc"}, {"n": 4})
    assert (result.score, result.error) == (0.75, None)


def test_this_machine_jails_graders() -> None:
    """CI has bubblewrap and user namespaces: the jail must be there, not silently skipped."""
    support = jail.jail_support()
    assert support.available, support.reason


async def test_no_view_of_the_parent_its_environment_or_memory(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLFT_JAIL_SECRET", SECRET)
    source = grader(
        """
        import os
        def grade(sample, item):
            parent = item["parent"]
            results = {"ppid": str(os.getppid()), "pids": sorted(os.listdir("/proc"))}
            attempt(results, "parent environ", lambda: open(f"/proc/{parent}/environ").read())
            attempt(results, "parent mem", lambda: open(f"/proc/{parent}/mem", "rb").read(1))
            attempt(results, "ppid environ", lambda: open(f"/proc/{os.getppid()}/environ").read())
            found = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    found.append(open(f"/proc/{pid}/environ").read())
                except OSError:
                    pass
            results["environs"] = " ".join(found) + " ".join(os.environ.values())
            print(json.dumps(results))
            return 1.0
        """
    )
    report = await attacks(pool, source, {"parent": os.getpid()})
    assert SECRET not in json.dumps(report)
    assert report["parent environ"].startswith("FileNotFoundError")  # no such pid in its world
    assert report["parent mem"].startswith("FileNotFoundError")
    # Its parent is the jail's own init (bubblewrap's reaper), whose environment is the jail's.
    assert str(os.getpid()) not in report["pids"] and report["ppid"] in ("0", "1")
    await assert_serves(pool)


async def test_no_home_and_a_read_only_filesystem(pool: SandboxPool, tmp_path: Path) -> None:
    home_canary = Path.home() / f".rlft-jail-canary-{os.getpid()}"
    home_canary.write_text(SECRET)
    tmp_canary = tmp_path / "credentials"
    tmp_canary.write_text(SECRET)
    stdlib = Path(json.__file__).parent  # bound into the jail, read-only
    name = f"rlft-jail-write-{os.getpid()}"  # what a broken jail would leave behind: removed
    targets = {
        "root": Path("/", name),
        "usr": Path("/usr", name),
        "stdlib": stdlib / name,
        "home dir": Path.home() / name,
        "tmp dir": tmp_path / name,
        "dev": Path("/dev/shm", name),
    }
    source = grader(
        """
        import os
        def grade(sample, item):
            results = {"home": os.path.expanduser("~")}
            for name in ("home_canary", "tmp_canary"):
                attempt(results, "read " + name, lambda: open(item[name]).read())
            attempt(results, "aws", lambda: open(os.path.expanduser("~/.aws/credentials")))
            for name, path in item["targets"].items():
                attempt(results, "write " + name, lambda: open(path, "x").write("x"))
            attempt(results, "write own tmp", lambda: open("/tmp/scratch", "w").write("ok"))
            print(json.dumps(results))
            return 1.0
        """
    )
    item = {
        "home_canary": str(home_canary),
        "tmp_canary": str(tmp_canary),
        "targets": {key: str(path) for key, path in targets.items()},
    }
    try:
        report = await attacks(pool, source, item)
        written = [key for key, path in targets.items() if await anyio.Path(path).exists()]
    finally:
        for path in (home_canary, *targets.values()):
            path.unlink(missing_ok=True)
    assert SECRET not in json.dumps(report)
    assert report["home"] == "/tmp"
    for key in ("read home_canary", "read tmp_canary", "aws"):
        assert report[key].startswith(("FileNotFoundError", "PermissionError")), key
    for key in targets:
        assert not report["write " + key].startswith("OK"), key
    assert written == []
    assert report["write own tmp"] == "OK 2"
    await assert_serves(pool)


async def test_cannot_kill_its_parent(pool: SandboxPool) -> None:
    source = grader(
        """
        import os, signal
        def grade(sample, item):
            results = {}
            attempt(results, "outer pid", lambda: os.kill(item["parent"], signal.SIGKILL))
            attempt(results, "getppid", lambda: os.kill(os.getppid(), signal.SIGKILL))
            print(json.dumps(results))
            return 1.0
        """
    )
    result = await pool.run(source, {"output_text": ""}, {"parent": os.getpid()})
    # Killing the jail's init ends the jail, so this grader's call crashes: only its own.
    assert result.error_kind in (None, "crash", "memory")
    await assert_serves(pool)  # and this process, the caller, is alive to see it


async def test_no_network_by_any_route(pool: SandboxPool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        source = grader(
            f"""
            import _socket, importlib, socket, subprocess, sys
            PORT = {port}
            def grade(sample, item):
                results = {{}}
                def base_class():
                    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                    raw.settimeout(1)
                    return raw.connect(("127.0.0.1", PORT))
                def reloaded():
                    fresh = importlib.reload(socket)
                    return fresh.create_connection(("127.0.0.1", PORT), 1)
                def child():
                    code = f"import socket; socket.create_connection(('127.0.0.1', {{PORT}}), 1)"
                    return subprocess.run([sys.executable, "-c", code], check=True)
                attempt(results, "base class", base_class)
                attempt(results, "reload", reloaded)
                attempt(results, "subprocess", child)
                attempt(results, "dns", lambda: _socket.getaddrinfo("example.com", 80))
                print(json.dumps(results))
                return 1.0
            """
        )
        report = await attacks(pool, source, {})
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected
    assert not any(value.startswith("OK") for value in report.values()), report
    assert report["subprocess"].startswith("PermissionError")  # no process can start
    await assert_serves(pool)


async def test_no_processes_so_none_outlives_the_call(pool: SandboxPool) -> None:
    source = grader(
        """
        import multiprocessing, os, subprocess, threading
        def grade(sample, item):
            results = {}
            attempt(results, "fork", os.fork)
            attempt(results, "popen", lambda: subprocess.Popen(["sleep", "1000"]))
            attempt(results, "spawn", lambda: os.posix_spawn("/bin/sleep", ["sleep", "1000"], {}))
            attempt(results, "multiprocessing", lambda: multiprocessing.Process(
                target=bytearray, args=(10**9,)).start())
            thread = threading.Thread(target=lambda: None)
            attempt(results, "thread", thread.start)
            thread.join()
            attempt(results, "processes", lambda: sorted(filter(str.isdigit, os.listdir("/proc"))))
            print(json.dumps(results))
            return 1.0
        """
    )
    report = await attacks(pool, source, {})
    for name in ("fork", "popen", "spawn", "multiprocessing"):
        assert report[name].startswith("PermissionError"), (name, report[name])
    assert report["thread"] == "OK None"  # threads still work (numpy, asyncio need them)
    assert report["processes"] == "OK ['1', '2']"  # the jail's init and the worker, no more
    await assert_serves(pool)


async def test_seccomp_blocks_escape_routes_and_the_uid_is_unprivileged(
    pool: SandboxPool,
) -> None:
    source = grader(
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, *args):
            if getattr(libc, name)(*args) == -1:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return "succeeded"
        def grade(sample, item):
            results = {"uid": os.getuid(), "caps": open("/proc/self/status").read().split(
                "CapEff:")[1].split()[0]}
            attempt(results, "ptrace", lambda: call("ptrace", 16, 1, 0, 0))  # PTRACE_ATTACH
            attempt(results, "unshare user", lambda: call("unshare", 0x10000000))
            attempt(results, "mount", lambda: call("mount", b"none", b"/tmp", b"tmpfs", 0, None))
            number = {"x86_64": 250, "aarch64": 219}[os.uname().machine]  # keyctl(2)
            attempt(results, "keyctl", lambda: call("syscall", number, 0, 0, 0, 0, 0))
            print(json.dumps(results))
            return 1.0
        """
    )
    report = await attacks(pool, source, {})
    assert report["uid"] == 65534 and int(report["caps"], 16) == 0  # type: ignore[comparison-overlap]
    for name in ("ptrace", "unshare user", "mount", "keyctl"):
        assert report[name].startswith("PermissionError: [Errno 1]"), (name, report[name])
    await assert_serves(pool)


async def test_graders_cannot_change_each_other(pool: SandboxPool) -> None:
    vandal = textwrap.dedent(
        """
        import builtins, json, math, sys
        def grade(sample, item):
            math.pi = 0.0
            builtins.float = lambda *a: 0.0
            json.loads = lambda *a, **k: {}
            sys.modules["random"] = None
            return 1
        """
    )
    victim = textwrap.dedent(
        """
        import json, math, random
        def grade(sample, item):
            return float(math.pi > 3) + float(json.loads("[1]") == [1]) + random.random() * 0
        """
    )
    assert (await pool.run(vandal, {}, {})).error is None  # it broke only its own float()
    result = await pool.run(victim, {}, {})
    assert (result.score, result.error) == (2.0, None)  # fresh interpreter, untouched modules
    await assert_serves(pool)


async def test_memory_cannot_be_multiplied_by_forking(pool: SandboxPool) -> None:
    source = textwrap.dedent(
        """
        import os
        def grade(sample, item):
            children = 0
            for _ in range(8):  # each child could take the whole limit again
                try:
                    if os.fork() == 0:
                        block = bytearray(400 * 1024 * 1024)
                        os._exit(0)
                    children += 1
                except OSError:
                    pass
            return children
        """
    )
    result = await pool.run(source, {}, {})
    assert (result.score, result.error) == (0.0, None)  # not one child started
    await assert_serves(pool)


async def test_the_batched_path_is_jailed_too(pool: SandboxPool) -> None:
    """The TRL reward function's batch runs in the same jail: no home, no network."""
    source = (
        "import os, socket\n"
        "def grade(sample, item):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 9), 1)\n"
        "        return 5.0\n"
        "    except OSError:\n"
        "        return float(os.path.expanduser('~') == '/tmp' and os.getuid() == 65534)\n"
    )
    reward = g.compile(g.Python(name="jailed", source=source), "trl", pool=pool)
    scores = reward(completions=["a"] * 40, label=["x"] * 40)
    assert scores == [1.0] * 40


# --- where no jail is available ------------------------------------------------------------------


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without bubblewrap: PATH holds only the interpreter's directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(pool_module, "_warned_unjailed", False)
    jail.jail_support.cache_clear()
    yield
    jail.jail_support.cache_clear()


@pytest.mark.usefixtures("no_bwrap")
async def test_required_isolation_refuses_without_bwrap() -> None:
    assert "bubblewrap (bwrap) is not installed" in jail.jail_support().reason
    async with SandboxPool(workers=1, limits=LIMITS, isolation="required") as strict:
        with pytest.raises(UsageError, match="isolation is required but unavailable: bubble"):
            await strict.run(RATIO, {"output_text": "abc"}, {"n": 4})
        assert not strict.jailed and not strict._live  # nothing was started


@pytest.mark.usefixtures("no_bwrap")
async def test_auto_isolation_warns_once_and_still_grades(caplog: pytest.LogCaptureFixture) -> None:
    async with SandboxPool(workers=1, limits=LIMITS, isolation="auto") as lenient:
        with pytest.warns(SandboxIsolationWarning, match="WITHOUT the OS-level jail"):
            first = await lenient.run(RATIO, {"output_text": "abc"}, {"n": 4})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second warning would raise here
            second = await lenient.run(RATIO, {"output_text": "ab"}, {"n": 4})
    assert (first.score, second.score) == (0.75, 0.5)
    assert [r.message for r in caplog.records if "without the OS-level jail" in r.message]


@pytest.mark.usefixtures("no_bwrap")
async def test_the_environment_variable_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLFT_GRADER_ISOLATION", "required")
    async with SandboxPool(workers=1, limits=LIMITS) as strict:
        assert strict.isolation == "required"
        with pytest.raises(UsageError, match="required but unavailable"):
            await strict.run(RATIO, {"output_text": "abc"}, {"n": 4})
    monkeypatch.setenv("RLFT_GRADER_ISOLATION", "off")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with SandboxPool(workers=1, limits=LIMITS) as plain:
            assert (await plain.run(RATIO, {"output_text": "a"}, {"n": 4})).score == 0.25
    monkeypatch.setenv("RLFT_GRADER_ISOLATION", "sometimes")
    with pytest.raises(UsageError, match="RLFT_GRADER_ISOLATION='sometimes': .* required, auto"):
        SandboxPool(workers=1)
    assert resolve_isolation(" Required ") == "required"


@pytest.mark.parametrize("grader", [PYTHON, MULTI], ids=["python", "multi"])
def test_a_bad_setting_fails_each_grade_closed(
    grader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine never raises: a bad RLFT_GRADER_ISOLATION scores 0 with the reason."""
    monkeypatch.setenv("RLFT_GRADER_ISOLATION", "maybe")
    monkeypatch.setattr(pool_module, "_default", None)  # the process-wide pool is made anew
    reward = g.compile(grader, "trl")
    assert reward(completions=["a", "b"], label=["a", "b"]) == [0.0, 0.0]
    assert reward.failures["python_server"] == 2
    (result,) = anyio.run(g.grade_many, grader, ["a"], [{}])
    assert result.score == 0.0 and "RLFT_GRADER_ISOLATION='maybe'" in (result.reason or "")


def test_other_platforms_are_told_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    jail.jail_support.cache_clear()
    try:
        support = jail.jail_support()
    finally:
        jail.jail_support.cache_clear()
    assert not support.available and "only Linux can jail graders" in support.reason


async def test_isolation_off_is_plain_processes() -> None:
    async with SandboxPool(workers=1, limits=LIMITS, isolation="off") as plain:
        result = await plain.run("import os\ndef grade(s, i):\n    return os.getuid()\n", {}, {})
        assert not plain.jailed
    assert result.score == os.getuid()  # not the jail's 65534


def test_a_python_install_under_tmp_is_bound_on_top_of_the_private_tmp() -> None:
    # A CI checkout or a throwaway venv may live under /tmp: the jail's private /tmp must be
    # mounted first, so the interpreter's own directories are bound over it, not hidden by it.
    from rlft.graders._sandbox import jail

    argv = jail.jail_argv(
        script="/x/worker.py", pass_fds=(), seccomp_fd=3, disk_mb=8, read_only=("/tmp/venv",)
    )
    tmpfs = argv.index("--tmpfs")
    assert argv[tmpfs + 1] == jail.JAIL_HOME
    bound = argv.index("/tmp/venv")
    assert argv[bound - 1] == "--ro-bind" and bound > tmpfs
