"""Jobs live in rlft's job store: a restart loses no event, and the CLI and Python see them."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from click.testing import CliRunner

import rlft
from rlft import graders as g
from rlft.cli import main
from rlft.serve import create_app
from rlft.testing import FakeProvider, FakeSettings

from .conftest import ADMIN, METHOD, asgi_client, options, project, rows

pytestmark = pytest.mark.anyio


async def test_restart_reattaches_jobs_and_loses_no_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path / "p", steps=6)
    monkeypatch.chdir(folder)
    # First server: polls once, then is stopped long before the job ends.
    first = create_app(options(folder, poll_interval=3600))
    async with asgi_client(first) as client:
        file_id = (
            await client.post(
                "/v1/files", files={"file": ("t.jsonl", rows())}, data={"purpose": "fine-tune"}
            )
        ).json()["id"]
        made = await client.post(
            "/v1/fine_tuning/jobs", json={"model": "m", "training_file": file_id, "method": METHOD}
        )
        job = made.json()
    async with rlft.Client(cwd=folder) as reader:
        before = await reader.store.events(job["id"])  # type: ignore[union-attr]

    # Second server on the same store: reattaches the job and follows it to the end.
    second = create_app(options(folder))
    async with asgi_client(second) as client:
        url = f"/v1/fine_tuning/jobs/{job['id']}"
        with anyio.fail_after(60):
            while True:  # polling a condition, with a deadline
                if (await client.get(url)).json()["status"] == "succeeded":
                    break
                await anyio.sleep(0.05)
        served = (await client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=1000")).json()

    fake = FakeProvider(settings=FakeSettings(state_dir=folder / "state", steps=6))
    upstream = await fake.list_events(job["backend_job_id"])
    assert len(upstream) > len(before)  # the restart really was mid-run
    assert [e["id"] for e in reversed(served["data"])] == [e.id for e in upstream]
    assert not served["has_more"]

    # The CLI's job list shows the server's job, settled.
    result = await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(main, ["jobs", "list", "--json"])
    )
    assert result.exit_code == 0, result.output
    listed = {row["local_id"]: row for row in json.loads(result.output)}
    assert listed[job["id"]]["status"] == "succeeded" and listed[job["id"]]["settled"]


async def test_the_server_sees_jobs_started_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path / "p", steps=3)
    monkeypatch.chdir(folder)
    (folder / "t.jsonl").write_bytes(rows())
    grader = g.from_openai(METHOD["reinforcement"]["grader"])  # type: ignore[index]
    async with rlft.Client(cwd=folder) as client:
        job = await client.jobs.create(
            train=rlft.Dataset.from_jsonl(folder / "t.jsonl"), grader=grader, model="m"
        )
    app = create_app(options(folder))
    async with asgi_client(app, key=ADMIN) as admin:
        listed = (await admin.get("/v1/fine_tuning/jobs")).json()["data"]
        assert [j["id"] for j in listed] == [job.local_id]
        one = (await admin.get(f"/v1/fine_tuning/jobs/{job.local_id}")).json()
        assert one["backend"] == "fake" and one["backend_job_id"] == job.id
    async with asgi_client(app) as alice:  # not an admin: not her job
        assert (await alice.get("/v1/fine_tuning/jobs")).json()["data"] == []
