"""One real backend behind the API: the local runner trains a tiny model, picked by model name."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openai
import pytest

from rlft.serve import create_app

from .conftest import KEY_A, live_server, options, project, wait_until

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.mark.slow
def test_local_runner_through_the_openai_client(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", extra="[local]\ntorch_threads = 1\n")
    lines = (QUICKSTART / "data" / "train.jsonl").read_text().splitlines()
    train = "\n".join(lines[:16]).encode()
    valid = "\n".join(lines[16:24]).encode()
    grader = json.loads((QUICKSTART / "grader.json").read_text())
    # The default backend is the fake; "rlft/*" models go to the local runner.
    app = create_app(
        options(folder, provider="fake", models={"rlft/*": "local"}, poll_interval=0.2)
    )
    with live_server(app) as url:
        oai = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY_A, max_retries=0)
        train_id = oai.files.create(file=("t.jsonl", io.BytesIO(train)), purpose="fine-tune").id
        valid_id = oai.files.create(file=("v.jsonl", io.BytesIO(valid)), purpose="fine-tune").id
        method = {
            "type": "reinforcement",
            "reinforcement": {
                "grader": grader,
                "hyperparameters": {"n_epochs": 1, "batch_size": 8, "eval_interval": 1},
            },
        }
        job = oai.fine_tuning.jobs.create(
            model="rlft/tiny",
            training_file=train_id,
            validation_file=valid_id,
            method=method,  # type: ignore[arg-type]
            seed=1,
        )
        assert job.model == "rlft/tiny"
        done = wait_until(
            lambda: (
                (j := oai.fine_tuning.jobs.retrieve(job.id)).status
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            timeout=280,
            every=0.5,
        )
        assert done.status == "succeeded", done.error
        raw = oai.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response.json()
        assert raw["backend"] == "local"
        events = list(oai.fine_tuning.jobs.list_events(job.id, limit=100))
        metrics = [e for e in events if e.type == "metrics"]
        assert metrics and all("train_reward_mean" in e.data["scores"] for e in metrics)
        assert Path(done.fine_tuned_model or "").exists()  # a folder transformers can load
