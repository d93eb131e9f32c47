"""``rlft.testing.FakeFineTuningServer``: one handler, reached in process and over loopback."""

from __future__ import annotations

import json

import httpx
import pytest

from rlft.testing import FakeFineTuningServer
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

pytestmark = pytest.mark.anyio

KEY = "sk-fake-CANARY-0123456789"


class Clock:
    """An injectable clock: tests move time, nothing sleeps."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def get(fake: FakeFineTuningServer, path: str, **params: str) -> dict:
    request = httpx.Request(
        "GET", f"http://fake/v1{path}", params=params, headers={"authorization": "Bearer x"}
    )
    response = fake(request)
    return json.loads(response.content)


async def test_one_handler_answers_both_transports_with_one_state() -> None:
    fake = FakeFineTuningServer(file_polls=0)
    (job_id,) = fake.seed(1)
    with fake.serve() as running:
        over_http = OpenAIProvider(settings=OpenAISettings(api_key=KEY, base_url=running.url))
        record = await over_http.cancel_job(job_id)
        await over_http.aclose()
    in_process = OpenAIProvider(
        settings=OpenAISettings(api_key=KEY, base_url="http://fake.test/v1"),
        transport=httpx.MockTransport(fake),
    )
    again = await in_process.get_job(job_id)
    await in_process.aclose()
    assert record.provider_status == again.provider_status == "cancelled"
    assert fake.stats() == {
        "total": 2,
        "POST /fine_tuning/jobs/{id}/cancel": 1,
        "GET /fine_tuning/jobs/{id}": 1,
    }
    assert [r.url.host for r in fake.requests] == ["127.0.0.1", "fake.test"]


def test_a_clock_driven_job_follows_the_clock() -> None:
    clock = Clock()
    fake = FakeFineTuningServer(total_steps=5, clock=clock)
    (job_id,) = fake.seed(1, duration=(11.0, 11.0), queue=1.0)
    assert get(fake, f"/fine_tuning/jobs/{job_id}")["status"] == "validating_files"
    clock.now += 5.0  # 4 of the 10 running seconds: 2 of 5 steps
    assert get(fake, f"/fine_tuning/jobs/{job_id}")["status"] == "running"
    steps = [
        e["data"]["step"]
        for e in get(fake, f"/fine_tuning/jobs/{job_id}/events")["data"]
        if e["type"] == "metrics"
    ]
    assert sorted(steps) == [1, 2]
    clock.now += 10.0
    body = get(fake, f"/fine_tuning/jobs/{job_id}")
    assert body["status"] == "succeeded" and body["fine_tuned_model"]


def test_a_paused_job_stops_its_clock_and_resumes_where_it_stopped() -> None:
    clock = Clock()
    fake = FakeFineTuningServer(total_steps=10, clock=clock)
    (job_id,) = fake.seed(1, duration=(10.0, 10.0))
    clock.now += 3.0
    pause = httpx.Request(
        "POST", f"http://fake/v1/fine_tuning/jobs/{job_id}/pause", headers={"api-key": "k"}
    )
    assert json.loads(fake(pause).content)["status"] == "paused"
    clock.now += 100.0  # paused: no progress
    assert get(fake, f"/fine_tuning/jobs/{job_id}")["status"] == "paused"
    resume = httpx.Request(
        "POST", f"http://fake/v1/fine_tuning/jobs/{job_id}/resume", headers={"api-key": "k"}
    )
    fake(resume)
    clock.now += 2.0  # 5 of 10 seconds run in total
    assert fake.jobs[job_id].step == 3  # where the pause left it: catching up is lazy
    assert get(fake, f"/fine_tuning/jobs/{job_id}")["status"] == "running"
    assert fake.jobs[job_id].step == 5


def test_the_azure_classic_fake_follows_its_spec() -> None:
    fake = FakeFineTuningServer(prefix="/openai", flavour="azure", api_version="2025-04-01-preview")
    url = "http://res/openai/fine_tuning/jobs?api-version=2025-04-01-preview"
    body = {"model": "m", "training_file": "f", "method": {"type": "reinforcement"}}
    refused = fake(
        httpx.Request("POST", url, json={**body, "metadata": {"a": "b"}}, headers={"api-key": "k"})
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == "metadata"
    fake.seed(2)
    listed = fake(httpx.Request("GET", f"{url}&metadata[seed]=0", headers={"api-key": "k"}))
    jobs = listed.json()["data"]
    assert len(jobs) == 2 and all("metadata" not in job for job in jobs)


def test_the_loopback_controls_seed_and_count_for_another_process() -> None:
    fake = FakeFineTuningServer()
    running = fake.serve()
    running.admin = True
    with running, httpx.Client() as client:
        root = running.url.removesuffix("/v1")
        ids = client.post(f"{root}/__seed", json={"count": 3, "duration": [60, 60]}).json()["ids"]
        page = client.get(f"{running.url}/fine_tuning/jobs", headers={"api-key": "k"}).json()
        stats = client.get(f"{root}/__stats").json()
        client.post(f"{root}/__reset")
        after = client.get(f"{root}/__stats").json()
    assert [job["id"] for job in page["data"]] == list(reversed(ids))
    assert stats == {"total": 1, "GET /fine_tuning/jobs": 1}
    assert after == {}
