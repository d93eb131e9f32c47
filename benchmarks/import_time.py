"""How long `import rlft` takes, against importing its own base dependencies together.

Run: .venv/bin/python benchmarks/import_time.py [--runs 21]

Each measurement is a fresh interpreter; the interpreter's own start-up (`python -c pass`) is
subtracted from both sides, and the runs are interleaved so machine noise hits both equally.
Goal: rlft / dependencies <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": "pass",
    "base dependencies": "import pydantic, httpx, pluggy, anyio",
    "import rlft": "import rlft",
}


def measure(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    for code in CASES.values():  # warm the file cache
        measure(code)
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, code in CASES.items():
            samples[name].append(measure(code))
    median = {name: statistics.median(values) for name, values in samples.items()}
    base = median["python -c pass"]
    deps = median["base dependencies"] - base
    rlft = median["import rlft"] - base
    print(f"runs: {args.runs} (medians, interpreter start-up {base * 1000:.0f} ms subtracted)")
    print(f"  base dependencies (pydantic, httpx, pluggy, anyio): {deps * 1000:7.1f} ms")
    print(f"  import rlft:                                        {rlft * 1000:7.1f} ms")
    print(f"  ratio rlft / dependencies: {rlft / deps:.2f}x  (goal <= 1.5x)")


if __name__ == "__main__":
    main()
