"""Preflight through real backends: OpenAI chat completions (respx) and the local tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

import rlft
from rlft.cli import main
from rlft.exceptions import CapabilityError
from rlft.testing import default_conformance_spec

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def test_preflight_samples_openai_and_warns_when_nothing_can_be_learnt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-preflight-test")
    spec = default_conformance_spec()
    asked: list[dict[str, object]] = []

    def always_billing(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "billing"}}]})

    with respx.mock(assert_all_mocked=True) as mock:
        mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=always_billing)
        async with rlft.Client(provider="openai", autoload=False, store=tmp_path / "j.db") as c:
            report = await c.jobs.preflight(spec, samples=8)
    assert len(asked) == 8 and {body["model"] for body in asked} == {"conformance-model"}
    # A constant answer: right on a quarter of the rows, and no variance within a prompt.
    assert report.provider == "openai" and len(report.samples) == 8
    labels = [spec.train[s.index].item["label"] for s in report.samples]
    assert [s.score for s in report.samples] == [float(label == "billing") for label in labels]
    assert report.mean == pytest.approx(sum(s.score for s in report.samples) / 8)


async def test_the_tiny_local_model_says_why_it_cannot_preflight(tmp_path: Path) -> None:
    spec = rlft.load_job_file(ROOT / "examples/quickstart/job.toml")
    async with rlft.Client(provider="local", autoload=False, store=tmp_path / "j.db") as client:
        with pytest.raises(CapabilityError, match="no base model to sample"):
            await client.jobs.preflight(spec, samples=2)


def test_rlft_preflight_command_reports_the_skip_reason_for_the_tiny_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLFT_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["preflight", str(ROOT / "examples/quickstart/job.toml")])
    assert "no base model to sample" in result.output
    assert "Traceback" not in result.output
