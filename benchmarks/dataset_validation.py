"""How fast, and in how much memory, a large dataset file is validated.

Run: ``.venv/bin/python benchmarks/dataset_validation.py [--rows 50000]``

It writes a synthetic RFT file (a developer and a user message, item fields nested two deep),
then times, best of three, and measures peak Python memory (tracemalloc, in a separate run so
tracing does not slow the timings):

* ``check_file`` with the OpenAI rules and a grader's ``item.*`` references (streamed);
* ``Dataset.from_jsonl`` (streamed, but it keeps the rows: that is its job);
* the obvious alternatives: ``json.loads`` of every line with no validation at all, a pydantic
  model validating every row, and reading the whole file into one string before parsing.

It also checks that ``check_file``'s peak memory stays flat as the file grows tenfold.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from rlft.datasets import Dataset, check_file


@dataclass(frozen=True)
class Ref:
    """Stands in for rlft.graders.ItemReference, so the benchmark needs no grader."""

    path: tuple[str | int, ...]
    grader_path: str
    template: str


def make_file(path: Path, rows: int, *, seed: int = 0) -> int:
    rng = random.Random(seed)
    labels = ["billing", "tech", "orders", "account", "other"]
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            words = " ".join(
                rng.choice(
                    [
                        "card",
                        "charged",
                        "twice",
                        "app",
                        "crash",
                        "order",
                        "late",
                        "refund",
                        "login",
                        "password",
                    ]
                )
                for _ in range(30)
            )
            row = {
                "messages": [
                    {"role": "developer", "content": "Classify the ticket. Answer as JSON."},
                    {"role": "user", "content": f"Ticket {i}: {words}"},
                ],
                "label": rng.choice(labels),
                "reason": words[:60],
                "ground_truth": {"date": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}", "id": i},
            }
            out.write(json.dumps(row) + "\n")
    return path.stat().st_size


# --- the alternatives --------------------------------------------------------------------------


def json_loads_only(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return count


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["developer", "user", "assistant", "tool"]
    content: str


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")
    messages: list[_Message]


_ROW = TypeAdapter(_Row)


def pydantic_per_row(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            _ROW.validate_json(line)
            count += 1
    return count


def whole_file_then_parse(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return len(rows)


# --- measuring ---------------------------------------------------------------------------------


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory(fn: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:7.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    refs = [
        Ref(("label",), "graders.label.reference", "item.label"),
        Ref(("ground_truth", "date"), "graders.date.reference", "item.ground_truth.date"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        small = Path(tmp) / "small.jsonl"
        size = make_file(path, args.rows)
        make_file(small, max(args.rows // 10, 1))

        def check(p: Path = path) -> Any:
            # The grader hook takes an rlft Grader; pass the references through the same code.
            from rlft.datasets import _validate

            original = _validate._references
            _validate._references = lambda grader: (refs, [])  # type: ignore[assignment]
            try:
                return check_file(p, provider="openai", grader=object())  # type: ignore[arg-type]
            finally:
                _validate._references = original

        report = check()
        assert report.ok, report.to_text()
        assert len(report.problems) == 1  # OpenAI's "pass a validation set too" warning

        cases: dict[str, Callable[[], Any]] = {
            "check_file (openai rules + grader fields)": check,
            "Dataset.from_jsonl": lambda: Dataset.from_jsonl(path),
            "json.loads per line, no validation": lambda: json_loads_only(path),
            "pydantic model per row": lambda: pydantic_per_row(path),
            "read whole file, then json.loads": lambda: whole_file_then_parse(path),
        }
        print(f"{args.rows:,} rows, {mib(size).strip()} file; Python {sys.version.split()[0]}")
        print(f"{'':44} {'time':>9} {'rows/s':>10} {'peak mem':>12}")
        results = {}
        for name, fn in cases.items():
            seconds = best_time(fn)
            peak = peak_memory(fn)
            results[name] = (seconds, peak)
            print(f"{name:44} {seconds:8.2f}s {args.rows / seconds:10,.0f} {mib(peak):>12}")

        check_s, check_mem = results["check_file (openai rules + grader fields)"]
        loads_s, _ = results["json.loads per line, no validation"]
        pyd_s, _ = results["pydantic model per row"]
        _, whole_mem = results["read whole file, then json.loads"]
        small_mem = peak_memory(lambda: check(small))
        print()
        print(f"check_file time vs bare json.loads:        {check_s / loads_s:5.2f}x")
        print(f"check_file time vs pydantic per row:       {check_s / pyd_s:5.2f}x")
        print(f"check_file peak memory vs whole-file load: {check_mem / whole_mem:5.3f}x")
        print(
            f"check_file peak memory, {args.rows // 10:,} -> {args.rows:,} rows: "
            f"{mib(small_mem).strip()} -> {mib(check_mem).strip()} "
            f"({check_mem / small_mem:.2f}x for 10x the rows: about "
            f"{(check_mem - small_mem) / (args.rows * 0.9):.0f} bytes a row, the hashes and line "
            "numbers duplicate detection keeps)"
        )
        print("(tracemalloc sees Python allocations only, not pydantic-core's own)")
        # Worst case: every row lacks a field the grader reads, so every row is a problem.
        refs.append(Ref(("missing",), "graders.x.reference", "item.missing"))
        bad_s = best_time(check, repeat=1)
        bad_mem = peak_memory(check)
        bad = check()
        print(
            f"worst case, {len(bad.errors):,} missing-field errors: {bad_s:.2f}s, peak "
            f"{mib(bad_mem).strip()}; the text report is {len(bad.to_text().splitlines())} lines"
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"process max RSS (all cases, incl. the whole-file load): {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
