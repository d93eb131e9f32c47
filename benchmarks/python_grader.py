"""Python grader speed: the TRL reward function's batched, jailed path vs ``grade()`` in-process.

Run: ``.venv/bin/python benchmarks/python_grader.py`` (or ``scripts/benchmarks.sh python_grader``)

Measured in one run, with the same trivial grader and checked scores:

1. ``grade(sample, item)`` called in this process, no sandbox: the ceiling.
2. The compiled TRL reward function (``compile(grader, "trl")``) on GRPO-sized batches of 128
   completions: every batch goes to the sandbox in one round trip per worker. Once jailed
   (bubblewrap + seccomp, the default where available) and once with ``isolation="off"``.
   Goal (issue 14.7, kept by the jail of 15.1): the jailed reward function runs at >= 1/100 of
   the in-process speed.
3. ``SandboxPool.run()`` one sample per round trip (``rlft grade``, ``grader.grade()``), jailed and
   not, and a fresh ``python`` subprocess per sample, the obvious alternative.
4. How long a worker takes to start, jailed and not (paid once per grader and worker).

Timings are medians of repeated runs, so a busy machine skews them less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from rlft import graders as g
from rlft.graders._runtime.sample import normalize_sample
from rlft.graders._sandbox import jail
from rlft.graders._sandbox.pool import SandboxPool
from rlft.graders._sandbox.proc import spawn

GRADER = """
def grade(sample, item):
    return float(sample["output_text"].strip() == item["answer"])
"""

# The obvious alternative: `python -c` per sample, the grader and its inputs on stdin.
FRESH = """
import json, sys
job = json.load(sys.stdin)
namespace = {}
exec(job["source"], namespace)
print(namespace["grade"](job["sample"], job["item"]))
"""


def cases(n: int) -> tuple[list[str], list[str], list[float]]:
    completions = [f" {i % 7} " for i in range(n)]
    answers = [str(i % 3) for i in range(n)]
    return completions, answers, [float(i % 7 == i % 3) for i in range(n)]


def in_process_s(batch: int, repeats: int) -> float:
    """Seconds per grade, calling grade() directly on the dicts the sandbox would receive."""
    namespace: dict[str, Any] = {}
    exec(GRADER, namespace)
    grade = namespace["grade"]
    completions, answers, expected = cases(batch)
    samples = [normalize_sample(text) for text in completions]
    items = [{"answer": answer} for answer in answers]
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(20):
            scores = [grade(s, i) for s, i in zip(samples, items, strict=True)]
        timings.append((time.perf_counter() - started) / (20 * batch))
    if scores != expected:
        raise SystemExit("in-process: wrong scores")
    return statistics.median(timings)


def reward_s(pool: SandboxPool, batch: int, repeats: int) -> float:
    """Seconds per completion through the compiled TRL reward function, called as TRL does."""
    reward = g.compile(g.Python(name="exact", source=GRADER), "trl", pool=pool)
    completions, answers, expected = cases(batch)
    prompts = [[{"role": "user", "content": "count"}]] * batch
    for _ in range(3):  # start and warm the workers
        reward(prompts=prompts, completions=completions, answer=answers)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        scores = reward(prompts=prompts, completions=completions, answer=answers)
        timings.append((time.perf_counter() - started) / batch)
        if scores != expected or reward.failures:
            raise SystemExit(f"reward function: wrong scores ({dict(reward.failures)})")
    return statistics.median(timings)


async def single_calls_rate(pool: SandboxPool, calls: int, concurrency: int) -> float:
    """Grades per second with one sample per round trip, ``concurrency`` callers at once."""
    completions, answers, expected = cases(calls)
    for i in range(4 * pool.workers):
        await pool.run(GRADER, {"output_text": completions[i]}, {"answer": answers[i]})
    failures = 0
    started = time.perf_counter()

    async def lane(offset: int) -> None:
        nonlocal failures
        for i in range(offset, calls, concurrency):
            result = await pool.run(GRADER, {"output_text": completions[i]}, {"answer": answers[i]})
            failures += result.score != expected[i] or not result.ok

    async with anyio.create_task_group() as group:
        for offset in range(concurrency):
            group.start_soon(lane, offset)
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"pool.run: {failures} wrong scores")
    return calls / elapsed


def fresh_rate(workers: int, calls: int) -> float:
    def one(i: int) -> bool:
        completions, answers, expected = cases(calls)
        job = json.dumps(
            {
                "source": GRADER,
                "sample": {"output_text": completions[i]},
                "item": {"answer": answers[i]},
            }
        )
        done = subprocess.run(
            [sys.executable, "-c", FRESH], input=job, capture_output=True, text=True, check=True
        )
        return float(done.stdout) == expected[i]

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        correct = sum(executor.map(one, range(calls)))
    elapsed = time.perf_counter() - started
    if correct != calls:
        raise SystemExit(f"fresh subprocess: {calls - correct} wrong scores")
    return calls / elapsed


def start_s(jailed: bool, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        worker = spawn(2048, 120.0, digest="0" * 64, jailed=jailed)
        timings.append(time.perf_counter() - started)
        worker.dispose()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=128, help="completions per reward call")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000, help="for the one-per-trip pool")
    parser.add_argument("--concurrency", type=int, default=32, help="tasks awaiting run()")
    parser.add_argument("--baseline-calls", type=int, default=60)
    args = parser.parse_args()

    support = jail.jail_support()
    print(f"CPUs: {os.cpu_count()}, workers: {args.workers}, python {sys.version.split()[0]}")
    print(
        f"jail: {'bubblewrap + seccomp' if support.available else 'UNAVAILABLE: ' + support.reason}"
    )
    inline = in_process_s(args.batch, args.repeats)
    results: dict[str, tuple[float, float]] = {}

    def measure(isolation: str) -> tuple[float, float]:
        pool = SandboxPool(workers=args.workers, isolation=isolation)  # type: ignore[arg-type]
        try:
            batched = reward_s(pool, args.batch, args.repeats)
            single = anyio.run(single_calls_rate, pool, args.calls, args.concurrency)
        finally:
            pool.close()
        return batched, single

    for isolation in ("auto", "off"):
        results[isolation] = measure(isolation)
    fresh = fresh_rate(args.workers, args.baseline_calls)
    jailed_start = start_s(True, 5) if support.available else float("nan")
    plain_start = start_s(False, 5)

    jail_batched, jail_single = results["auto"]
    off_batched, off_single = results["off"]
    ratio = inline / jail_batched
    print(f"grade() in-process         : {inline * 1e6:9.2f} us/grade  ({1 / inline:12,.0f}/s)")
    print(
        f"TRL reward fn, jailed      : {jail_batched * 1e6:9.2f} us/grade  "
        f"({1 / jail_batched:12,.0f}/s)  batches of {args.batch}"
    )
    print(
        f"TRL reward fn, no jail     : {off_batched * 1e6:9.2f} us/grade  "
        f"({1 / off_batched:12,.0f}/s)"
    )
    print(
        f"pool.run() 1/trip, jailed  : {1e6 / jail_single:9.2f} us/grade  ({jail_single:12,.0f}/s)"
    )
    print(f"pool.run() 1/trip, no jail : {1e6 / off_single:9.2f} us/grade  ({off_single:12,.0f}/s)")
    print(f"fresh subprocess per grade : {1e6 / fresh:9.0f} us/grade  ({fresh:12,.1f}/s)")
    print(f"worker start, jailed       : {jailed_start * 1e3:9.1f} ms")
    print(f"worker start, no jail      : {plain_start * 1e3:9.1f} ms")
    print(
        f"ratio reward fn (jailed) / in-process : 1/{ratio:,.0f}  "
        f"(goal >= 1/100: {'met' if ratio <= 100 else 'MISSED'})"
    )
    print(f"jail cost, batched path    : {jail_batched / off_batched:6.2f}x the time of no jail")
    print(f"jail cost, one per trip    : {off_single / jail_single:6.2f}x the time of no jail")
    print(f"batched vs one per trip    : {1 / (jail_single * jail_batched):6.1f}x faster (jailed)")
    print(f"pool.run() vs fresh subprocess: {jail_single / fresh:6.1f}x faster (jailed)")


if __name__ == "__main__":
    main()
