"""The OS-level jail around each grader worker: bubblewrap namespaces plus a seccomp filter.

A jailed worker is started as ``bwrap <options> python -I /run/rlft/worker.py ...``. bubblewrap
(the sandbox Flatpak uses) gives it new user, PID, network, mount, IPC, UTS and cgroup
namespaces; an unprivileged uid (65534) with no capabilities and no way to make more user
namespaces; a read-only view of only the system and Python directories it needs (no home, no
``/proc`` of the caller, no ``/etc`` beyond the dynamic loader's files and the time zone); a
private ``/tmp`` (a size-capped tmpfs, its home and working directory); a new session; and death
with its parent. The seccomp filter, compiled by libseccomp (through ``pyseccomp``) and loaded by
bubblewrap, makes process creation fail (threads are allowed), as well as the kernel interfaces a
sandbox escape usually starts from (``ptrace``, ``bpf``, ``keyctl``, ``mount``, ``unshare``, ...).

``jail_support()`` says once per process whether this machine can do all of that; the pool
decides what to do when it cannot (see ``rlft.graders._sandbox.pool``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JAIL_HOME", "JAIL_SCRIPT", "JailSupport", "jail_argv", "jail_support", "seccomp_bpf"]

JAIL_HOME = "/tmp"
"""The grader's home, temporary and working directory inside the jail."""
JAIL_SCRIPT = "/run/rlft/worker.py"
"""Where the worker script is mounted inside the jail."""
_UID = 65534  # "nobody": an unprivileged uid inside the user namespace
_PROBE_TIMEOUT_S = 20.0
_CLONE_THREAD = 0x00010000
# Denied with EPERM: process creation is handled apart; these are the kernel interfaces a
# sandbox escape or a reach into another process usually needs (cf. Flatpak's filter).
_DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "quotactl",
    "lookup_dcookie",
)
# The only files of /etc a Python worker needs: the dynamic loader's cache and the time zone.
_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/alternatives",
)
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True, slots=True)
class JailSupport:
    """Whether python graders can be jailed on this machine, and if not, why."""

    available: bool
    reason: str
    """Empty when available; otherwise one line saying what is missing and how to get it."""


@functools.lru_cache(maxsize=1)
def seccomp_bpf() -> bytes:
    """The compiled seccomp filter (raises ``OSError``/``ImportError`` where libseccomp is not)."""
    import pyseccomp as sc  # type: ignore[import-untyped]

    rules = sc.SyscallFilter(sc.ALLOW)
    # fork(), vfork() and a clone() that is not a thread: no process can start in the jail.
    rules.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    for name in ("fork", "vfork"):
        _add(rules, sc.ERRNO(errno.EPERM), name)
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes libc fall back to
    # clone(), which the rule above checks.
    _add(rules, sc.ERRNO(errno.ENOSYS), "clone3")
    for name in _DENIED:
        _add(rules, sc.ERRNO(errno.EPERM), name)
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb") as sink:
            rules.export_bpf(sink)
        with os.fdopen(read_fd, "rb") as source:
            read_fd = -1
            return source.read()
    finally:
        if read_fd >= 0:
            os.close(read_fd)


def _add(rules: Any, action: int, name: str) -> None:
    with contextlib.suppress(ValueError, RuntimeError, OSError):  # not on this architecture
        rules.add_rule(action, name)


# sys.path, plus the source folders of setuptools' editable installs, whose import finders map
# package names to folders that are not on sys.path.
_PATHS_PROBE = """
import json, sys
paths = list(sys.path)
for finder in sys.meta_path:
    mapping = getattr(sys.modules.get(getattr(finder, "__module__", ""), None), "MAPPING", None)
    if isinstance(mapping, dict):
        paths += [str(path) for path in mapping.values()]
print(json.dumps(paths))
"""


@functools.lru_cache(maxsize=1)
def _python_paths() -> tuple[str, ...]:
    """The directories the isolated worker interpreter reads: its prefixes and ``sys.path``."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", _PATHS_PROBE],
        capture_output=True,
        text=True,
        timeout=_PROBE_TIMEOUT_S,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    paths = {p for p in json.loads(done.stdout) if p}
    paths.update((sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix))
    paths.add(str(Path(sys.executable).parent))
    for path in list(paths):  # a symlinked prefix (pyenv, Homebrew) needs its target too
        paths.add(os.path.realpath(path))
    kept = sorted(p for p in paths if os.path.isabs(p) and os.path.exists(p))
    return tuple(p for p in kept if not any(p.startswith(k + os.sep) for k in kept if k != p))


def jail_argv(
    *,
    script: str,
    pass_fds: tuple[int, ...],
    seccomp_fd: int,
    disk_mb: int,
    read_only: tuple[str, ...] = (),
) -> list[str]:
    """The ``bwrap`` command line that runs ``sys.executable -I JAIL_SCRIPT`` in the jail.

    Args:
        script: The worker script on the host, mounted read-only at ``JAIL_SCRIPT``.
        pass_fds: File descriptors the worker inherits (listed only to document the contract).
        seccomp_fd: A readable fd holding ``seccomp_bpf()``.
        disk_mb: The size of the private ``/tmp``, in MiB.
        read_only: More host directories to show read-only at the same path (NLTK data).
    """
    del pass_fds  # bubblewrap passes inherited fds through as they are
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [
        bwrap,
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup and mount namespaces
        "--unshare-user",  # also when rlft runs as root, where --unshare-all only tries
        "--disable-userns",  # and the grader cannot make another one
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(_UID),
        "--gid",
        str(_UID),
        "--hostname",
        "rlft-grader",
        # The private /tmp comes first, so a Python install that lives under /tmp (a CI
        # checkout, a throwaway venv) is still bound, read-only, on top of it below.
        "--size",
        str(disk_mb * 1024 * 1024),
        "--tmpfs",
        JAIL_HOME,
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for path in (*_python_paths(), *read_only):
        if path != "/usr" and not path.startswith("/usr/"):
            argv += ["--ro-bind", path, path]
    argv += [
        "--ro-bind",
        script,
        JAIL_SCRIPT,
        "--proc",
        "/proc",  # the jail's own PID namespace: it sees only itself
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",  # no /dev/shm to fill memory through
        "--remount-ro",
        "/",
        "--chdir",
        JAIL_HOME,
        "--seccomp",
        str(seccomp_fd),
        "--",
    ]
    return argv


@functools.lru_cache(maxsize=1)
def jail_support() -> JailSupport:
    """Check once per process that a jailed interpreter starts here (about 50 ms)."""
    if not sys.platform.startswith("linux"):
        return JailSupport(False, f"{sys.platform} has no bubblewrap; only Linux can jail graders")
    if shutil.which("bwrap") is None:
        return JailSupport(False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    try:
        program = seccomp_bpf()
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        return JailSupport(
            False,
            f"seccomp is unavailable ({type(exc).__name__}: {exc}): install libseccomp2 and "
            "pyseccomp",
        )
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)
        os.close(write_fd)
        write_fd = -1
        argv = jail_argv(
            script=str(Path(__file__).with_name("worker.py")),
            pass_fds=(),
            seccomp_fd=read_fd,
            disk_mb=1,
        )
        done = subprocess.run(
            [*argv, sys.executable, "-I", "-S", "-c", "pass"],
            pass_fds=(read_fd,),
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return JailSupport(False, f"bubblewrap could not run: {exc}")
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return JailSupport(
            False,
            f"bubblewrap cannot create its namespaces here ({detail}); user namespaces may be "
            "disabled (sysctl kernel.unprivileged_userns_clone or "
            "kernel.apparmor_restrict_unprivileged_userns)",
        )
    return JailSupport(True, "")
