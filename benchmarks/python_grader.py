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


def in_process_s(batch: int, repeats: int) -> tuple[float, float]:
    """Median and best seconds per grade, calling grade() on the dicts the sandbox receives."""
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
    return statistics.median(timings), min(timings)


def workers_cpu_s(pool: SandboxPool) -> float:
    """CPU seconds used so far by the pool's worker processes and their jails (Linux)."""
    pids = {worker.pid for worker in pool._live}
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    frontier = list(pids)
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        pids.update(children)
        frontier += children
    return sum(times.get(pid, 0.0) for pid in pids)


def reward_s(pool: SandboxPool, batch: int, repeats: int) -> tuple[float, float, float]:
    """Per completion through the compiled TRL reward function, called as TRL does: the
    median and best wall seconds, and the CPU seconds (this process plus the workers)."""
    reward = g.compile(g.Python(name="exact", source=GRADER), "trl", pool=pool)
    completions, answers, expected = cases(batch)
    prompts = [[{"role": "user", "content": "count"}]] * batch
    for _ in range(3):  # start and warm the workers
        reward(prompts=prompts, completions=completions, answer=answers)
    timings = []
    cpu_started, workers_started = time.process_time(), workers_cpu_s(pool)
    for _ in range(repeats):
        started = time.perf_counter()
        scores = reward(prompts=prompts, completions=completions, answer=answers)
        timings.append((time.perf_counter() - started) / batch)
        if scores != expected or reward.failures:
            raise SystemExit(f"reward function: wrong scores ({dict(reward.failures)})")
    cpu = time.process_time() - cpu_started + workers_cpu_s(pool) - workers_started
    return statistics.median(timings), min(timings), cpu / (repeats * batch)


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
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    jail_name = "bubblewrap + seccomp" if support.available else "UNAVAILABLE: " + support.reason
    print(f"jail: {jail_name}")
    inline, inline_best = in_process_s(args.batch, args.repeats)
    results: dict[str, tuple[tuple[float, float, float], float]] = {}

    def measure(isolation: str) -> tuple[tuple[float, float, float], float]:
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

    (jail_batched, jail_best, jail_cpu), jail_single = results["auto"]
    (off_batched, off_best, off_cpu), off_single = results["off"]
    us = 1e6
    print(f"{'':28s}  median us/grade    best us/grade   CPU us/grade")
    print(f"{'grade() in-process':28s}: {inline * us:13.2f}  {inline_best * us:15.2f}")
    print(
        f"{'TRL reward fn, jailed':28s}: {jail_batched * us:13.2f}  {jail_best * us:15.2f}"
        f"  {jail_cpu * us:13.2f}   (batches of {args.batch})"
    )
    print(
        f"{'TRL reward fn, no jail':28s}: {off_batched * us:13.2f}  {off_best * us:15.2f}"
        f"  {off_cpu * us:13.2f}"
    )
    print(f"{'pool.run() 1/trip, jailed':28s}: {us / jail_single:13.2f}  ({jail_single:,.0f}/s)")
    print(f"{'pool.run() 1/trip, no jail':28s}: {us / off_single:13.2f}  ({off_single:,.0f}/s)")
    print(f"{'fresh subprocess per grade':28s}: {us / fresh:13.0f}  ({fresh:,.1f}/s)")
    print(f"worker start: jailed {jailed_start * 1e3:.1f} ms, no jail {plain_start * 1e3:.1f} ms")
    ratio = jail_batched / inline
    best = jail_best / inline_best
    cpu_ratio = jail_cpu / inline_best
    verdict = "met" if ratio <= 100 else "MISSED"
    print(
        f"ratio, jailed reward fn vs in-process grade(): 1/{ratio:,.0f} median (goal >= 1/100: "
        f"{verdict}), 1/{best:,.0f} best, 1/{cpu_ratio:,.0f} in CPU time"
    )
    print(f"jail cost, batched path : {jail_batched / off_batched:5.2f}x the time without it")
    print(f"jail cost, one per trip : {off_single / jail_single:5.2f}x the time without it")
    print(f"batched vs one per trip : {1 / (jail_single * jail_batched):5.1f}x faster (jailed)")
    print(f"pool.run() vs a fresh subprocess: {jail_single / fresh:5.1f}x faster (jailed)")
    print(f"load average after: {os.getloadavg()[0]:.1f} (a busy machine slows round trips most)")


if __name__ == "__main__":
    main()
