"""Load on loopback: 1,000 jobs listed, 100 concurrent event pollers, no errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import openai

import rlft
from rlft import JobRecord, JobStatus
from rlft.serve import ApiKey, create_app

from .conftest import KEY_A, METHOD, live_server, options, project, rows


async def seed(folder: Path, count: int) -> None:
    """Record ``count`` finished jobs of Alice's in the job store, in one transaction."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        JobRecord(
            id=f"fakejob-load-{i:04d}",
            provider="fake",
            status=JobStatus.SUCCEEDED,
            provider_status="succeeded",
            model="m",
            created_at=start + timedelta(seconds=i),
            metadata={"serve_owner": ApiKey.from_secret(KEY_A).owner, "batch": str(i % 2)},
        )
        for i in range(count)
    ]
    async with rlft.Client(cwd=folder) as client:
        await client.store.adopt_many(records, scope="load")  # type: ignore[union-attr]


def test_thousand_jobs_and_a_hundred_pollers(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", steps=20)
    app = create_app(options(folder, rate=10_000, burst=10_000, poll_interval=0.05))
    with live_server(app) as url:
        anyio.run(seed, folder, 1000)
        oai = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY_A, max_retries=0)
        ids = [job.id for job in oai.fine_tuning.jobs.list(limit=100)]  # ten pages
        assert len(ids) == len(set(ids)) == 1000
        assert len(oai.fine_tuning.jobs.list(limit=1000).data) == 1000
        assert len(list(oai.fine_tuning.jobs.list(limit=100, metadata={"batch": "1"}))) == 500

        file_id = oai.files.create(file=("t.jsonl", rows()), purpose="fine-tune").id
        job = oai.fine_tuning.jobs.create(model="m", training_file=file_id, method=METHOD)
        statuses: list[int] = []
        seen: list[int] = []

        async def poller(client: httpx.AsyncClient) -> None:
            for _ in range(5):
                response = await client.get(f"/v1/fine_tuning/jobs/{job.id}/events?limit=100")
                statuses.append(response.status_code)
                seen.append(len(response.json()["data"]))

        async def pollers() -> None:
            limits = httpx.Limits(max_connections=100)
            headers = {"Authorization": f"Bearer {KEY_A}"}
            async with (
                httpx.AsyncClient(
                    base_url=url, headers=headers, limits=limits, timeout=60
                ) as client,
                anyio.create_task_group() as tg,
            ):
                for _ in range(100):
                    tg.start_soon(poller, client)

        anyio.run(pollers)
        assert len(statuses) == 500 and set(statuses) == {200}
        assert max(seen) >= 1
