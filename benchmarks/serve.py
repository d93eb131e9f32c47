"""Benchmark `rlft serve`: requests/s and p99 latency over loopback HTTP vs the job store directly.

Run: ``python benchmarks/serve.py [--jobs 1000] [--requests 500] [--concurrency 50]``

It seeds a throwaway RLFT_HOME with ``--jobs`` finished jobs and one job with events (the
``fake`` backend), serves them with uvicorn on a free loopback port, and times two reads:
a page of 100 jobs (``GET /v1/fine_tuning/jobs?limit=100``) and a job's events
(``GET .../events?limit=100``), each against the same query made on ``rlft.Client().store``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import uvicorn

KEY = "sk-bench-0123456789"


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else samples[0]


async def _timed(
    call: Callable[[], Awaitable[object]], requests: int, concurrency: int
) -> tuple[float, float]:
    """(requests per second, p99 seconds) of ``requests`` calls, ``concurrency`` at a time."""
    latencies: list[float] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(requests):
            tg.start_soon(one)
    return requests / (time.perf_counter() - started), _p99(latencies)


async def _seed(folder: Path, jobs: int) -> None:
    import rlft
    from rlft import JobRecord, JobStatus
    from rlft.serve import ApiKey

    start = datetime(2026, 1, 1, tzinfo=UTC)
    owner = ApiKey.from_secret(KEY).owner
    records = [
        JobRecord(
            id=f"fakejob-bench-{i:05d}",
            provider="fake",
            status=JobStatus.SUCCEEDED,
            provider_status="succeeded",
            model="m",
            created_at=start + timedelta(seconds=i),
            metadata={"serve_owner": owner},
        )
        for i in range(jobs)
    ]
    async with rlft.Client(cwd=folder) as client:
        assert client.store is not None
        rows = await client.store.adopt_many(records, scope="bench")
        for row in rows:  # settled: nothing for the server to watch
            await client.store.record_events(row.local_id, [], final=True)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="rlft-serve-bench-"))
    os.environ["RLFT_HOME"] = str(home)
    folder = home / "project"
    folder.mkdir()
    (folder / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{folder / "state"}"\nsteps = 20\n'
    )
    from rlft.serve import ApiKey, ServeOptions, create_app

    anyio.run(_seed, folder, args.jobs)
    options = ServeOptions(
        cwd=folder, keys=(ApiKey.from_secret(KEY),), rate=1e6, burst=10**6, poll_interval=0.05
    )
    app = create_app(options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    server.ready.wait(30)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    results: dict[str, dict[str, float]] = {}

    async def run() -> None:
        import rlft

        headers = {"Authorization": f"Bearer {KEY}"}
        limits = httpx.Limits(max_connections=args.concurrency)
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http,
            rlft.Client(cwd=folder) as direct,
        ):
            rows = folder / "rows.jsonl"
            rows.write_text(
                "\n".join(
                    json.dumps({"messages": [{"role": "user", "content": f"q{i}"}], "a": "x"})
                    for i in range(12)
                )
            )
            file_id = (
                await http.post(
                    "/v1/files",
                    files={"file": ("rows.jsonl", rows.read_bytes())},
                    data={"purpose": "fine-tune"},
                )
            ).json()["id"]
            grader = {
                "type": "string_check",
                "name": "a",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.a }}",
                "operation": "eq",
            }
            job = (
                await http.post(
                    "/v1/fine_tuning/jobs",
                    json={
                        "model": "m",
                        "training_file": file_id,
                        "method": {"type": "reinforcement", "reinforcement": {"grader": grader}},
                    },
                )
            ).json()
            store = direct.store
            assert store is not None
            for _ in range(600):  # the job ends in a few seconds; wait for its last events
                row = await store.get(job["id"])
                if row is not None and row.settled:
                    break
                await anyio.sleep(0.1)

            async def http_list() -> None:
                (await http.get("/v1/fine_tuning/jobs?limit=100")).raise_for_status()

            async def http_events() -> None:
                (
                    await http.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100")
                ).raise_for_status()

            async def store_list() -> None:
                await store.jobs(limit=100)

            async def store_events() -> None:
                await store.events(job["id"])

            for name, call in (
                ("http list 100 jobs", http_list),
                ("store list 100 jobs", store_list),
                ("http events", http_events),
                ("store events", store_events),
            ):
                rps, p99 = await _timed(call, args.requests, args.concurrency)
                results[name] = {"requests_per_s": rps, "p99_ms": p99 * 1000}

    try:
        anyio.run(run)
    finally:
        server.should_exit = True
        thread.join(30)
    print(
        f"rlft serve benchmark: {args.jobs} jobs, {args.requests} requests, "
        f"{args.concurrency} concurrent, loopback {url}"
    )
    for name, numbers in results.items():
        print(
            f"  {name:22s} {numbers['requests_per_s']:9.1f} req/s   p99 {numbers['p99_ms']:8.2f} ms"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
