"""Preflight through real backends: OpenAI chat completions (respx) and the local tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

import rlft
from rlft._preflight import run_preflight
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
    assert len(asked) == 32 and {body["model"] for body in asked} == {"conformance-model"}
    # Each prompt is asked 4 times (the default per_prompt), one prompt after the other.
    texts = [body["messages"][-1]["content"] for body in asked]  # type: ignore[index]
    assert all(len(set(texts[i : i + 4])) == 1 for i in range(0, 32, 4))
    assert len(set(texts)) == 8
    # A constant answer: right on a quarter of the rows, and no variance within a prompt.
    assert report.provider == "openai" and len(report.samples) == 32
    labels = [spec.train[s.index].item["label"] for s in report.samples]
    assert [s.score for s in report.samples] == [float(label == "billing") for label in labels]
    assert report.mean == pytest.approx(sum(s.score for s in report.samples) / 32)
    assert report.flat_prompts == 8 and report.flat_share == 1.0
    assert any("8 of 8 prompts are flat" in w for w in report.warnings)


def test_rlft_preflight_prints_each_prompts_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLFT_HOME", str(tmp_path / "home"))
    rows = [
        json.dumps({"messages": [{"role": "user", "content": f"ticket {i}"}], "label": "billing"})
        for i in range(4)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    job = tmp_path / "job.toml"
    job.write_text(
        'train = "train.jsonl"\n[grader]\ntype = "string_check"\nname = "label"\n'
        'input = "{{ sample.output_text }}"\nreference = "{{ item.label }}"\noperation = "eq"\n'
    )
    # The fake answers billing, nope, nope, billing, ... in turn: 3 samples per prompt.
    (tmp_path / "rlft.toml").write_text(
        'provider = "fake"\n[fake]\ncompletions = ["billing", "nope", "nope", "billing"]\n'
    )
    result = CliRunner().invoke(main, ["preflight", str(job), "-k", "4", "-n", "3"])
    assert result.exit_code == 0, result.output
    assert "4 prompts x 3 samples: 0 flat (0%" in result.output
    assert "line 1: mean 0.333 spread 1.000 [1.00 0.00 0.00]" in result.output
    assert "line 2: mean 0.667 spread 1.000 [1.00 1.00 0.00]" in result.output
    flat = CliRunner().invoke(main, ["preflight", str(job), "-k", "4", "-n", "4", "--json"])
    report = json.loads(flat.output)
    # Four answers in turn, four samples each: every prompt gets the same 2-of-4 mix.
    assert report["flat_prompts"] == 0 and report["prompts"][0]["scores"] == [1, 0, 0, 1]
    (tmp_path / "rlft.toml").write_text('provider = "fake"\n[fake]\ncompletions = ["billing"]\n')
    constant = CliRunner().invoke(main, ["preflight", str(job), "-n", "2", "--strict"])
    assert constant.exit_code == 1  # --strict: a warning fails the command
    assert "line 1: mean 1.000 spread 0.000 [1.00 1.00]  flat" in constant.output
    assert "warning: 4 of 4 prompts are flat (100%; 0 never solved, 4 always solved)" in (
        constant.output
    )


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


async def test_preflight_samples_bedrock_nova_through_its_inference_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3
    from botocore.stub import Stubber

    from rlft_providers.bedrock._provider import BedrockProvider
    from rlft_providers.bedrock._settings import BedrockSettings

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(name, value)
    spec = default_conformance_spec().model_copy(update={"model": "amazon.nova-2-lite-v1:0:256k"})
    provider = BedrockProvider(
        settings=BedrockSettings(region="us-east-1"), session=boto3.Session(region_name="us-east-1")
    )
    runtime = provider._aws.client("bedrock-runtime")
    asked: list[str] = []
    runtime.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse",
        lambda params, **_: asked.append(params["modelId"]),
    )
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "billing"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    with Stubber(runtime) as stubber:
        for _ in range(3 * 2):
            stubber.add_response("converse", answer)
        report = await run_preflight(provider, spec, samples=3, per_prompt=2)
        stubber.assert_no_pending_responses()
    # The fine-tuning id is not invocable: every sample went to the inference profile.
    assert asked == ["us.amazon.nova-2-lite-v1:0"] * 6
    assert len(report.prompts) == 3 and all(p.flat for p in report.prompts)
    assert report.model == "amazon.nova-2-lite-v1:0:256k"
