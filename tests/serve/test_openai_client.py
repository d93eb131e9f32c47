"""The official `openai` client, unchanged, against `rlft serve` on a real loopback server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openai
import pytest

from rlft.serve import create_app

from .conftest import (
    ADMIN,
    KEY_A,
    KEY_B,
    METHOD,
    OPENAI_UPSTREAM,
    live_server,
    options,
    project,
    rows,
    validate,
    wait_until,
)


def client_for(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_openai_client_runs_a_job_end_to_end(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", steps=4)
    with live_server(create_app(options(folder))) as url:
        oai = client_for(url)
        uploaded = oai.files.create(file=("train.jsonl", io.BytesIO(rows())), purpose="fine-tune")
        validate(
            oai.files.with_raw_response.retrieve(uploaded.id).http_response.json(), "OpenAIFile"
        )
        assert oai.files.retrieve(uploaded.id).bytes == len(rows())
        assert oai.files.content(uploaded.id).content == rows()
        assert [f.id for f in oai.files.list()] == [uploaded.id]
        validate(oai.files.with_raw_response.list().http_response.json(), "ListFilesResponse")

        job = oai.fine_tuning.jobs.create(
            model="fake-model",
            training_file=uploaded.id,
            method=METHOD,  # type: ignore[arg-type]
            metadata={"team": "search"},
            seed=7,
        )
        assert job.id.startswith("rlft-") and job.training_file == uploaded.id
        assert job.method is not None and job.method.type == "reinforcement"
        assert job.seed == 7 and job.metadata == {"team": "search"}

        done = wait_until(
            lambda: (j := oai.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and j
        )
        raw_job = oai.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response.json()
        validate(raw_job, "FineTuningJob")
        assert done.fine_tuned_model and done.finished_at

        # Events: newest first, paged two at a time by the client's own auto-pagination.
        first = oai.fine_tuning.jobs.list_events(job.id, limit=2)
        assert len(first.data) == 2 and first.has_more
        events = list(oai.fine_tuning.jobs.list_events(job.id, limit=2))
        assert len({e.id for e in events}) == len(events) > 4
        raw_events = oai.fine_tuning.jobs.with_raw_response.list_events(job.id, limit=100)
        validate(raw_events.http_response.json(), "ListFineTuningJobEventsResponse")
        for event in raw_events.http_response.json()["data"]:
            validate(event, "FineTuningJobEvent")
        metrics = [e for e in events if e.type == "metrics"]
        assert [e.data["step"] for e in metrics] == [4, 3, 2, 1]
        data = metrics[0].data
        assert data["total_steps"] == 4
        assert data["scores"]["train_reward_mean"] == pytest.approx(0.9)
        assert {"errors", "usage"} <= set(data)
        # Every key rlft sends is one OpenAI's RFT guide shows in its metrics event.
        guide = json.loads((OPENAI_UPSTREAM / "openai_rft_metrics_event.json").read_text())
        upstream = guide["event"]["data"]
        for event in metrics:
            assert set(event.data) <= set(upstream), set(event.data) - set(upstream)
            assert set(event.data["scores"]) <= set(upstream["scores"])
            assert set(event.data["usage"]) <= set(upstream["usage"])

        checkpoints = oai.fine_tuning.jobs.checkpoints.list(job.id)
        assert [c.step_number for c in checkpoints.data] == [4, 3, 2, 1]
        raw_points = oai.fine_tuning.jobs.checkpoints.with_raw_response.list(job.id)
        validate(raw_points.http_response.json(), "ListFineTuningJobCheckpointsResponse")
        for checkpoint in checkpoints.data:
            assert checkpoint.fine_tuning_job_id == job.id

        listed = oai.fine_tuning.jobs.list(metadata={"team": "search"})
        assert [j.id for j in listed.data] == [job.id]
        assert oai.fine_tuning.jobs.list(metadata={"team": "ads"}).data == []

        validate(
            oai.files.with_raw_response.delete(uploaded.id).http_response.json(),
            "DeleteFileResponse",
        )
        with pytest.raises(openai.NotFoundError):
            oai.files.retrieve(uploaded.id)
        with pytest.raises(openai.NotFoundError):
            oai.files.delete(uploaded.id)


def test_list_pages_newest_first_and_keys_see_only_their_own(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", steps=50)
    with live_server(create_app(options(folder, poll_interval=3600))) as url:
        alice, bob, admin = client_for(url), client_for(url, KEY_B), client_for(url, ADMIN)
        file_id = alice.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune").id
        made = [
            alice.fine_tuning.jobs.create(model="m", training_file=file_id, method=METHOD).id
            for _ in range(3)
        ]
        page = alice.fine_tuning.jobs.list(limit=2)
        raw_page = alice.fine_tuning.jobs.with_raw_response.list(limit=2).http_response.json()
        validate(raw_page, "ListPaginatedFineTuningJobsResponse")
        assert [j.id for j in page.data] == made[::-1][:2] and page.has_more
        rest = alice.fine_tuning.jobs.list(limit=2, after=page.data[-1].id)
        assert [j.id for j in rest.data] == [made[0]] and not rest.has_more
        assert [j.id for j in alice.fine_tuning.jobs.list()] == made[::-1]

        # Bob sees none of Alice's jobs or files; the admin key sees them all.
        assert list(bob.fine_tuning.jobs.list()) == []
        with pytest.raises(openai.NotFoundError):
            bob.fine_tuning.jobs.retrieve(made[0])
        with pytest.raises(openai.NotFoundError):
            bob.fine_tuning.jobs.cancel(made[0])
        with pytest.raises(openai.NotFoundError):
            bob.files.content(file_id)
        with pytest.raises(openai.BadRequestError):
            bob.fine_tuning.jobs.create(model="m", training_file=file_id, method=METHOD)
        assert bob.files.list().data == []
        assert {j.id for j in admin.fine_tuning.jobs.list()} == set(made)


def test_pause_resume_cancel(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", steps=50)
    with live_server(create_app(options(folder, poll_interval=3600))) as url:
        oai = client_for(url)
        file_id = oai.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune").id
        job = oai.fine_tuning.jobs.create(model="m", training_file=file_id, method=METHOD)
        # The fake pauses running jobs only: wait for the watcher's first poll to start it.
        wait_until(lambda: oai.fine_tuning.jobs.retrieve(job.id).status == "running")
        paused = oai.fine_tuning.jobs.pause(job.id)
        assert paused.status == "paused"
        raw = oai.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response.json()
        validate(raw, "FineTuningJob", open_status=True)
        resumed = oai.fine_tuning.jobs.resume(job.id)
        assert resumed.status in ("running", "queued")
        cancelled = oai.fine_tuning.jobs.cancel(job.id)
        assert cancelled.status == "cancelled" and cancelled.finished_at
        assert oai.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError, match="already cancelled"):
            oai.fine_tuning.jobs.cancel(job.id)


def test_supervised_and_dpo_get_a_clear_400(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    with live_server(create_app(options(folder))) as url:
        oai = client_for(url)
        file_id = oai.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune").id
        for method in ({"type": "supervised"}, {"type": "dpo"}):
            with pytest.raises(openai.BadRequestError) as caught:
                oai.fine_tuning.jobs.create(model="m", training_file=file_id, method=method)  # type: ignore[arg-type]
            assert "reinforcement fine-tuning" in caught.value.message
            assert caught.value.param == "method.type"
        with pytest.raises(openai.BadRequestError, match="reinforcement"):
            oai.fine_tuning.jobs.create(model="m", training_file=file_id)


def test_idempotency_key_returns_the_first_job(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", steps=50)
    with live_server(create_app(options(folder, poll_interval=3600))) as url:
        oai = client_for(url)
        file_id = oai.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune").id

        def create(key: str | None) -> str:
            headers = {"Idempotency-Key": key} if key else {}
            return oai.fine_tuning.jobs.create(
                model="m", training_file=file_id, method=METHOD, extra_headers=headers
            ).id

        first = create("retry-1")
        assert create("retry-1") == first
        assert create("retry-2") != first
        assert create(None) != create(None)  # without a key, each create is a new job
        # Another key's identical Idempotency-Key is its own.
        bob = client_for(url, KEY_B)
        bob_file = bob.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune").id
        other = bob.fine_tuning.jobs.create(
            model="m",
            training_file=bob_file,
            method=METHOD,
            extra_headers={"Idempotency-Key": "retry-1"},
        ).id
        assert other != first


@pytest.mark.anyio
async def test_async_openai_client_in_process_over_asgi(tmp_path: Path) -> None:
    import httpx

    folder = project(tmp_path / "p", steps=50)
    app = create_app(options(folder, poll_interval=3600))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw,
    ):
        oai = openai.AsyncOpenAI(
            base_url="http://testserver/v1", api_key=KEY_A, http_client=raw, max_retries=0
        )
        uploaded = await oai.files.create(file=("t.jsonl", io.BytesIO(rows())), purpose="fine-tune")
        job = await oai.fine_tuning.jobs.create(
            model="m",
            training_file=uploaded.id,
            method=METHOD,  # type: ignore[arg-type]
        )
        listed = await oai.fine_tuning.jobs.list()
        assert [j.id for j in listed.data] == [job.id]
        assert (await oai.fine_tuning.jobs.retrieve(job.id)).training_file == uploaded.id
        with pytest.raises(openai.AuthenticationError):
            bad = openai.AsyncOpenAI(
                base_url="http://testserver/v1",
                api_key="sk-wrong-000000",
                http_client=raw,
                max_retries=0,
            )
            await bad.fine_tuning.jobs.list()
