"""Python grader throughput: rlft's reusable sandbox pool vs a fresh subprocess per sample.

Run: ``.venv/bin/python benchmarks/python_grader.py [--calls 5000] [--baseline-calls 100]``

Both sides run the same trivial grader with the same number of processes in parallel (one per
CPU by default) and check every score. Goals: >= 1,000 grades/s through the pool on 2 cores,
and >= 20x the fresh-subprocess baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import anyio

from rlft.graders._sandbox.pool import SandboxPool

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


def pairs(n: int) -> list[tuple[dict[str, str], dict[str, str], float]]:
    return [
        ({"output_text": f" {i % 7} "}, {"answer": str(i % 3)}, float(i % 7 == i % 3))
        for i in range(n)
    ]


async def pool_rate(workers: int, calls: int, concurrency: int) -> float:
    cases = pairs(calls)
    async with SandboxPool(workers=workers) as pool:
        for sample, item, _ in cases[: 10 * workers]:  # start and warm every worker
            await pool.run(GRADER, sample, item)
        failures = 0
        started = time.perf_counter()

        async def lane(offset: int) -> None:
            nonlocal failures
            for sample, item, expected in cases[offset::concurrency]:
                result = await pool.run(GRADER, sample, item)
                failures += result.score != expected or not result.ok

        async with anyio.create_task_group() as tg:
            for offset in range(concurrency):
                tg.start_soon(lane, offset)
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"pool: {failures} wrong scores")
    return calls / elapsed


def fresh_rate(workers: int, calls: int) -> float:
    def one(case: tuple[dict[str, str], dict[str, str], float]) -> bool:
        sample, item, expected = case
        job = json.dumps({"source": GRADER, "sample": sample, "item": item})
        done = subprocess.run(
            [sys.executable, "-c", FRESH], input=job, capture_output=True, text=True, check=True
        )
        return float(done.stdout) == expected

    cases = pairs(calls)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        correct = sum(executor.map(one, cases))
    elapsed = time.perf_counter() - started
    if correct != calls:
        raise SystemExit(f"fresh subprocess: {calls - correct} wrong scores")
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32, help="tasks awaiting run()")
    parser.add_argument("--baseline-calls", type=int, default=100)
    args = parser.parse_args()

    pooled = anyio.run(pool_rate, args.workers, args.calls, args.concurrency)
    fresh = fresh_rate(args.workers, args.baseline_calls)
    ratio = pooled / fresh
    print(f"CPUs: {os.cpu_count()}, workers: {args.workers}, python {sys.version.split()[0]}")
    print(f"sandbox pool      : {pooled:8.0f} grades/s  ({args.calls} calls)")
    print(f"fresh subprocess  : {fresh:8.1f} grades/s  ({args.baseline_calls} calls)")
    print(f"ratio             : {ratio:8.1f}x")
    print(
        f"goals             : >= 1,000/s {'met' if pooled >= 1000 else 'MISSED'}, "
        f">= 20x {'met' if ratio >= 20 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
