"""Helpers of the hardening suite: a CLI runner that refuses tracebacks, a budget, fuzz settings.

Hypothesis runs with bounded examples and no deadline (a busy machine must not fail a test);
each example is instead held to a generous time and memory budget by ``bounded``. Under CI
(``CI=true``) examples are derandomised, so a run repeats exactly.
"""

from __future__ import annotations

import contextlib
import os
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from rlft.cli import main

FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
"""The suite's settings: ``@settings(FUZZ, max_examples=examples(n))`` to change the count."""


def examples(count: int) -> int:
    """``count`` examples, times ``RLFT_FUZZ_SCALE`` (default 1) for a deeper run by hand."""
    return count * max(1, int(os.environ.get("RLFT_FUZZ_SCALE", "1")))


SECONDS = 20.0
"""Per example: far above the milliseconds each takes, so only a hang or a blow-up trips it."""
MEGABYTES = 64


@contextmanager
def bounded(seconds: float = SECONDS, megabytes: int = MEGABYTES) -> Iterator[None]:
    """Fail if the block takes longer than ``seconds`` or allocates over ``megabytes`` at peak."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        if not tracing:
            tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    assert peak < megabytes * 2**20, f"peak {peak / 2**20:.0f} MiB"


def cli(*args: str | Path, cwd: Path | None = None) -> Result:
    """Run ``rlft`` in-process; any exception other than an exit is a test failure."""
    runner = CliRunner()
    argv = [str(arg) for arg in args]
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = runner.invoke(main, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"rlft {' '.join(argv)} raised {result.exception!r}") from (
            result.exception
        )
    assert "Traceback" not in result.output, result.output
    return result


def assert_one_clear_line(result: Result, *, names: Sequence[str] = (), code: int = 2) -> str:
    """A failed command: exit ``code``, one ``error:`` line naming every string in ``names``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    (line,) = lines
    assert line.startswith("error: "), line
    for name in names:
        assert name in line, (name, line)
    return line
