"""Graders over HTTP: OpenAI's run/validate, and Azure's endpoint-grader contract under load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from rlft.serve import create_app

from .conftest import GRADER, asgi_client, options, project, validate

pytestmark = pytest.mark.anyio


async def test_run_and_validate_answer_in_openai_shapes(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p")))
    async with asgi_client(app) as client:
        body = {"grader": GRADER, "model_sample": "billing", "item": {"label": "billing"}}
        ran = await client.post("/v1/fine_tuning/alpha/graders/run", json=body)
        assert ran.status_code == 200, ran.text
        validate(ran.json(), "RunGraderResponse")
        assert ran.json()["reward"] == 1.0
        wrong = await client.post(
            "/v1/fine_tuning/alpha/graders/run", json={**body, "item": {"label": "tech"}}
        )
        assert wrong.json()["reward"] == 0.0
        # A missing item field fails closed and says so in OpenAI's flags.
        missing = await client.post("/v1/fine_tuning/alpha/graders/run", json={**body, "item": {}})
        assert missing.json()["reward"] == 0.0
        assert missing.json()["metadata"]["errors"]["invalid_variable_error"] is True

        checked = await client.post("/v1/fine_tuning/alpha/graders/validate", json=body)
        assert checked.status_code == 200
        validate(checked.json(), "ValidateGraderResponse")
        assert checked.json()["grader"]["type"] == "string_check"


async def test_python_graders_from_the_network_run_in_the_sandbox(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p")))
    source = (
        "def grade(sample, item):\n    import os\n"
        f"    return 0.0 if os.getpid() == {os.getpid()} else 1.0\n"
    )
    grader = {"type": "python", "name": "where", "source": source}
    async with asgi_client(app) as client:
        ran = await client.post(
            "/v1/fine_tuning/alpha/graders/run",
            json={"grader": grader, "model_sample": "x", "item": {}},
        )
    assert ran.status_code == 200, ran.text
    assert ran.json()["reward"] == 1.0  # not this (the server's) process


async def test_endpoint_grader_contract_under_concurrency(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    python = {
        "type": "python",
        "name": "len",
        "source": "def grade(sample, item):\n"
        "    return 1.0 if sample['output_text'] == item['answer'] else 0.0\n",
    }
    (folder / "exact.json").write_text(json.dumps(GRADER))
    (folder / "py.json").write_text(json.dumps(python))
    graders = {"exact": folder / "exact.json", "py": folder / "py.json"}
    app = create_app(options(folder, graders=graders, rate=1000, burst=1000))
    results: dict[tuple[str, int], float] = {}
    async with asgi_client(app) as client:

        async def call(name: str, index: int) -> None:
            good = index % 2 == 0
            item = {"label": "billing", "answer": "billing"}
            body = {
                "sample": "billing" if good else "refund",
                "item": item,
                "trace_id": f"trace-{index}",
            }
            response = await client.post(f"/graders/{name}/score", json=body)
            assert response.status_code == 200, response.text
            assert set(response.json()) == {"score"}
            results[(name, index)] = response.json()["score"]

        async with anyio.create_task_group() as tg:
            for index in range(50):
                tg.start_soon(call, "exact", index)
                tg.start_soon(call, "py", index)
        missing = await client.post("/graders/nope/score", json={"sample": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "name"
        bad = await client.post("/graders/exact/score", json={"item": {}})
        assert bad.status_code == 400
    assert len(results) == 100
    for (_, index), score in results.items():
        assert score == (1.0 if index % 2 == 0 else 0.0)


async def test_a_grade_past_the_timeout_scores_zero_and_the_server_goes_on(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    slow = {
        "type": "python",
        "name": "slow",
        "source": "def grade(sample, item):\n    while True:\n        pass\n",
    }
    (folder / "slow.json").write_text(json.dumps(slow))
    (folder / "exact.json").write_text(json.dumps(GRADER))
    graders = {"slow": folder / "slow.json", "exact": folder / "exact.json"}
    app = create_app(options(folder, graders=graders, grader_timeout=1.0))
    async with asgi_client(app) as client:
        with anyio.fail_after(60):
            timed_out = await client.post(
                "/graders/slow/score", json={"sample": "x", "item": {}, "trace_id": "t"}
            )
        assert timed_out.status_code == 200 and timed_out.json() == {"score": 0.0}
        ok = await client.post(
            "/graders/exact/score",
            json={"sample": "billing", "item": {"label": "billing"}, "trace_id": "t2"},
        )
        assert ok.json() == {"score": 1.0}
