"""JobManager against a naive per-job polling loop: 1,000 jobs on a loopback OpenAI-style server.

Run: .venv/bin/python benchmarks/manager.py [--jobs 1000] [--rounds 5] [--no-wait]

The server (``rlft.testing.FakeFineTuningServer`` over loopback) runs in its own process on
127.0.0.1, so the CPU time measured here is the client's alone; it counts every request it
serves. Both sides talk to it through rlft's real OpenAI backend (httpx, retries, JSON
parsing, neutral models).

1. One full status refresh of every job, repeated ``--rounds`` times: HTTP requests, wall time
   and CPU time (medians), and peak Python memory (tracemalloc, a separate run).
   Manager: ``JobManager.refresh`` (list pages of 100). Naive: ``await job.refresh()`` per job.
2. ``--wait`` (default on): jobs finishing over a few seconds, watched until all succeed.
   Manager: ``wait_all``. Naive: a loop refreshing every unfinished job each round.

Goal: the manager's requests per full refresh <= 1/50 of the naive loop's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

import rlft
from rlft._manager import JobManager


class Server:
    """The fake server in a child process; ``stats()`` reads its request counter."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlft.testing._fake_openai_api"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.admin = self.url.rsplit("/v1", 1)[0]

    def seed(self, count: int, duration: tuple[float, float]) -> None:
        body = {"count": count, "duration": list(duration)}
        httpx.post(f"{self.admin}/__seed", json=body, timeout=60).raise_for_status()

    def stats(self) -> dict[str, int]:
        answer: dict[str, int] = httpx.get(f"{self.admin}/__stats", timeout=60).json()
        return answer

    def reset(self) -> None:
        httpx.post(f"{self.admin}/__reset", timeout=60).raise_for_status()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def client(server: Server, store: Path) -> rlft.Client:
    settings = {"base_url": server.url, "api_key": "sk-benchmark", "max_retries": 0}
    return rlft.Client(provider="openai", autoload=False, settings=settings, store=store)


async def measure(
    server: Server, fn: Callable[[], Awaitable[Any]], *, memory: bool = False
) -> dict[str, float]:
    server.reset()
    if memory:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    await fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = 0
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "requests": server.stats().get("total", 0),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mib": peak / 2**20,
    }


async def naive_refresh(jobs: list[rlft.Job]) -> None:
    for job in jobs:  # the obvious loop: one GET per job
        await job.refresh()


async def naive_wait(jobs: list[rlft.Job], interval: float, max_rounds: int) -> None:
    pending = list(jobs)
    for _ in range(max_rounds):  # bounded: the benchmark never hangs
        for job in pending:
            await job.refresh()
        pending = [job for job in pending if not job.status.is_terminal]
        if not pending:
            return
        await anyio.sleep(interval)
    raise RuntimeError(f"{len(pending)} jobs still unfinished after {max_rounds} rounds")


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


async def refresh_benchmark(server: Server, jobs_count: int, rounds: int) -> dict[str, Any]:
    server.seed(jobs_count, duration=(3600, 3600))  # running for the whole benchmark
    with tempfile.TemporaryDirectory() as folder:
        async with client(server, Path(folder) / "jobs.db") as openai:
            jobs = await openai.jobs.list(remote=True, limit=jobs_count)
            assert len(jobs) == jobs_count, len(jobs)
            manager = JobManager(client=openai)
            await manager.refresh(jobs)  # warm up connections and imports on both sides
            await naive_refresh(jobs)
            results: dict[str, Any] = {}
            for name, fn in (
                ("manager", lambda: manager.refresh(jobs)),
                ("naive", lambda: naive_refresh(jobs)),
            ):
                runs = [await measure(server, fn) for _ in range(rounds)]
                peak = await measure(server, fn, memory=True)
                results[name] = {
                    "requests": median(runs, "requests"),
                    "wall_s": median(runs, "wall_s"),
                    "cpu_s": median(runs, "cpu_s"),
                    "peak_mib": peak["peak_mib"],
                }
            return results


async def wait_benchmark(server: Server, jobs_count: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    interval = 1.0
    for name in ("manager", "naive"):
        server.seed(jobs_count, duration=(2.0, 8.0))  # fresh jobs, finishing over 2-8 s
        with tempfile.TemporaryDirectory() as folder:
            async with client(server, Path(folder) / "jobs.db") as openai:
                jobs = await openai.jobs.list(remote=True, limit=jobs_count)
                manager = JobManager(client=openai, poll_interval=interval)
                waits = {
                    "manager": lambda m=manager, j=jobs: m.wait_all(j, timeout=120),
                    "naive": lambda j=jobs: naive_wait(j, interval, 120),
                }
                row = await measure(server, waits[name])
                assert all(job.status is rlft.JobStatus.SUCCEEDED for job in jobs)
                results[name] = row
    return results


def report(title: str, results: dict[str, Any]) -> None:
    manager, naive = results["manager"], results["naive"]
    print(f"\n{title}")
    print(f"{'':12}{'manager':>12}{'naive':>12}{'manager/naive':>16}")
    for key, label in (
        ("requests", "requests"),
        ("wall_s", "wall s"),
        ("cpu_s", "cpu s"),
        ("peak_mib", "peak MiB"),
    ):
        if key not in manager or (key == "peak_mib" and not manager[key]):
            continue
        ratio = manager[key] / naive[key] if naive[key] else float("nan")
        print(f"{label:12}{manager[key]:12.3f}{naive[key]:12.3f}{ratio:16.4f}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    server = Server()
    try:
        results = {"jobs": args.jobs}
        results["refresh"] = await refresh_benchmark(server, args.jobs, args.rounds)
        if args.wait:
            results["wait"] = await wait_benchmark(server, args.jobs)
        return results
    finally:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    options = parser.parse_args()
    found = anyio.run(main, options)
    if options.json:
        print(json.dumps(found, indent=2))
    else:
        report(f"one full status refresh of {options.jobs} jobs (median)", found["refresh"])
        if "wait" in found:
            report(f"waiting for {options.jobs} jobs finishing over 2-8 s", found["wait"])
        refresh = found["refresh"]
        ratio = refresh["manager"]["requests"] / refresh["naive"]["requests"]
        verdict = "OK" if ratio <= 1 / 50 else "MISSED"
        print(f"\nrequests per refresh: 1/{1 / ratio:.0f} of naive (goal <= 1/50): {verdict}")
