"""Grader engine throughput: samples/s through ``grade_many`` for each grader kind.

Run: ``.venv/bin/python benchmarks/graders.py [--samples 5000] [--baseline-calls 60]``

Prints samples/s on the local engine for string_check, rouge_l, a multi (string_check +
rouge_l) and a trivial python grader through the sandbox pool; the same python grader with a
fresh ``python`` subprocess per sample (the obvious alternative) and the ratio (goals: >= 1,000
python grades/s on 2 cores, >= 20x the fresh subprocess); the TRL reward function's rate; and
then runs the sandbox's own benchmark, ``benchmarks/python_grader.py``, when it is present.
Every score is checked, so a fast wrong engine fails loudly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from rlft import graders as g
from rlft.graders._sandbox.pool import SandboxPool

LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
WHY = g.TextSimilarity(
    name="why",
    input="{{ sample.output_json.why }}",
    reference="{{ item.why }}",
    evaluation_metric="rouge_l",
)
TRIAGE = g.Multi(
    name="triage", graders={"label": LABEL, "why": WHY}, calculate_output="0.8 * label + 0.2 * why"
)
PYTHON = g.Python(
    name="exact",
    source="def grade(sample, item):\n"
    "    return float(sample['output_json']['label'] == item['label'])\n",
)
LABELS = ("billing", "technical", "account")
FRESH = """
import json, sys
job = json.load(sys.stdin)
namespace = {}
exec(job["source"], namespace)
print(namespace["grade"](job["sample"], job["item"]))
"""


def cases(n: int) -> tuple[list[str], list[dict[str, str]]]:
    samples = [
        json.dumps({"label": LABELS[i % 3], "why": f"customer {i % 11} was charged twice"})
        for i in range(n)
    ]
    items = [{"label": LABELS[i % 2], "why": f"the customer {i % 5} paid twice"} for i in range(n)]
    return samples, items


def expected_label(n: int) -> list[float]:
    return [float(i % 3 == i % 2) for i in range(n)]  # the sample label vs the item label


async def engine_rate(
    grader: g.BaseGrader, n: int, pool: SandboxPool | None, check: Callable[[list[Any]], None]
) -> float:
    samples, items = cases(n)
    await g.grade_many(grader, samples[:50], items[:50], pool=pool, concurrency=32)  # warm up
    started = time.perf_counter()
    results = await g.grade_many(grader, samples, items, pool=pool, concurrency=32)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{grader.name}: {len(failed)} grades failed: {failed[0].reason}")
    check(results)
    return n / elapsed


def fresh_rate(n: int, workers: int) -> float:
    samples, items = cases(n)
    expected = expected_label(n)

    def one(index: int) -> None:
        job = {
            "source": PYTHON.source,
            "sample": {"output_json": json.loads(samples[index])},
            "item": items[index],
        }
        out = subprocess.run(
            [sys.executable, "-I", "-c", FRESH],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            check=True,
        )
        if float(out.stdout) != expected[index]:
            raise SystemExit(f"fresh subprocess scored {out.stdout!r} for case {index}")

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(one, range(n)))
    return n / (time.perf_counter() - started)


def trl_rate(n: int) -> float:
    samples, items = cases(n)
    reward = g.compile(TRIAGE, "trl", concurrency=32)
    columns = {"label": [i["label"] for i in items], "why": [i["why"] for i in items]}
    reward(completions=samples[:50], **{k: v[:50] for k, v in columns.items()})  # warm up
    started = time.perf_counter()
    scores = reward(completions=samples, **columns)
    elapsed = time.perf_counter() - started
    if len(scores) != n or reward.failures:
        raise SystemExit(f"TRL reward function failed: {dict(reward.failures)}")
    return n / elapsed


async def measure(args: argparse.Namespace) -> dict[str, float]:
    n = args.samples
    want = expected_label(n)

    def labels_ok(results: list[Any]) -> None:
        if [r.score for r in results] != want:
            raise SystemExit("string_check scored wrong")

    def in_unit(results: list[Any]) -> None:
        if not all(0.0 <= r.score <= 1.0 for r in results):
            raise SystemExit("a score left [0, 1]")

    def multi_ok(results: list[Any]) -> None:
        for result, label in zip(results, want, strict=True):
            if abs(result.score - (0.8 * label + 0.2 * result.sub_scores["why"])) > 1e-12:
                raise SystemExit("multi scored wrong")

    rates = {
        "string_check": await engine_rate(LABEL, n, None, labels_ok),
        "rouge_l": await engine_rate(WHY, n, None, in_unit),
        "multi": await engine_rate(TRIAGE, n, None, multi_ok),
    }
    async with SandboxPool(workers=args.workers) as pool:
        rates["python (pool)"] = await engine_rate(PYTHON, n, pool, labels_ok)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--baseline-calls", type=int, default=60)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(
        f"CPUs: {os.cpu_count()}, sandbox workers: {args.workers}, "
        f"python {sys.version.split()[0]}, {args.samples} samples each"
    )
    rates = anyio.run(measure, args)
    for name, rate in rates.items():
        print(f"{name:<28}: {rate:9.0f} samples/s")
    fresh = fresh_rate(args.baseline_calls, args.workers)
    ratio = rates["python (pool)"] / fresh
    print(
        f"{'python (fresh subprocess)':<28}: {fresh:9.1f} samples/s ({args.baseline_calls} calls)"
    )
    print(f"{'python pool / fresh':<28}: {ratio:9.1f}x  (goal >= 20x)")
    verdict = "met" if rates["python (pool)"] >= 1000 else "MISSED"
    print(f"{'python pool vs 1,000/s goal':<28}: {verdict}")
    print(f"{'TRL reward fn (multi)':<28}: {trl_rate(args.samples):9.0f} samples/s")
    sandbox_bench = Path(__file__).with_name("python_grader.py")
    if sandbox_bench.exists():
        print(f"\n--- {sandbox_bench.name} (the sandbox pool alone) ---", flush=True)
        subprocess.run([sys.executable, str(sandbox_bench)], check=False)


if __name__ == "__main__":
    main()
