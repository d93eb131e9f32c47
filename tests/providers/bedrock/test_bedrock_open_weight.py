"""Provider ``bedrock-open-weight``: Bedrock's OpenAI-compatible endpoint on the shared fake server.

The grader Lambda runs on moto; the endpoint is ``rlft.testing``'s ``FakeFineTuningServer``
behind an ``httpx.MockTransport``. The mantle metrics event is vendored from AWS's gpt-oss RFT
notebook (``upstream/mantle_metrics_event.json``, provenance inside).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from rlft._models import Checkpoint, Hyperparameters, JobStatus, StepMetrics
from rlft.datasets import Dataset
from rlft.exceptions import (
    AuthenticationError,
    CapabilityError,
    HyperparameterError,
    ServerError,
    UsageError,
)
from rlft.testing import FakeFineTuningServer
from rlft_providers.bedrock._open_weight import BedrockOpenWeight, lambda_grader
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._settings import BedrockOpenWeightSettings
from rlft_providers.bedrock._translate import mantle_metrics

pytestmark = pytest.mark.anyio

BASE = "https://bedrock-mantle.us-east-1.api.aws/v1"


UPSTREAM = Path(__file__).parent / "upstream"


@pytest.fixture
def server() -> FakeFineTuningServer:
    return FakeFineTuningServer(prefix="/v1")


def _provider(server: FakeFineTuningServer, **settings: Any) -> BedrockOpenWeight:
    return BedrockOpenWeight(
        settings=BedrockOpenWeightSettings(
            region="us-east-1", file_poll_interval=0.001, **settings
        ),
        session=boto3.Session(),
        transport=httpx.MockTransport(server),
    )


def _dataset() -> Dataset:
    return Dataset.from_records(
        {"messages": [{"role": "user", "content": f"{i} + {i}?"}], "reference_answer": str(2 * i)}
        for i in range(100)
    )


def _decode_key(header: str) -> dict[str, list[str]]:
    token = header.removeprefix("Bearer ")
    assert token.startswith("bedrock-api-key-")
    url = base64.b64decode(token.removeprefix("bedrock-api-key-")).decode()
    assert url.startswith("bedrock.amazonaws.com/?") and url.endswith("&Version=1")
    return parse_qs(urlsplit("https://" + url).query)


async def test_data_goes_straight_to_the_endpoint_and_the_grader_is_a_lambda(
    staged: None,
    server: FakeFineTuningServer,
    bedrock: SimpleNamespace,
    make_request: Any,
) -> None:
    provider = _provider(server)
    spec_hp = Hyperparameters(epochs=1, batch_size=4, learning_rate_multiplier=1.0)
    request = make_request(model="openai.gpt-oss-20b", hyperparameters=spec_hp)
    provider.check_spec(request.spec)
    file_id = await provider.upload_dataset(_dataset(), role="train")
    assert file_id.startswith("file-")  # the endpoint's own file, never an s3:// URI
    s3 = boto3.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=bedrock.bucket)  # nothing staged
    request = dataclasses.replace(request, training_file=file_id, idempotency_key="ow-1")

    record = await provider.create_job(request)

    assert record.id.startswith("ftjob-") and record.provider == "bedrock-open-weight"
    assert (record.status, record.provider_status) == (JobStatus.PENDING, "validating_files")
    create = next(
        r for r in server.requests if r.method == "POST" and r.url.path == "/v1/fine_tuning/jobs"
    )
    body = json.loads(create.content)
    function = boto3.client("lambda").get_function_configuration(FunctionName="rlft-grader-label")
    assert body == {
        "model": "openai.gpt-oss-20b",
        "training_file": file_id,
        "method": {
            "type": "reinforcement",
            "reinforcement": {
                "grader": {
                    "type": "lambda",
                    "lambda": {"function": function["FunctionArn"] + ":1"},
                },
                "hyperparameters": {
                    "n_epochs": 1,
                    "batch_size": 4,
                    "learning_rate_multiplier": 1.0,
                },
            },
        },
    }  # no suffix ("not supported") and no metadata
    # Every request went to the endpoint: the only S3 calls are none at all.
    assert [r.url.path for r in server.requests].count("/v1/files") == 1
    # A short-term Bedrock API key signed from the (fake) credential chain, as AWS builds it.
    query = _decode_key(create.headers["Authorization"])
    assert query["Action"] == ["CallWithBearerToken"]
    access_key = boto3.Session().get_credentials().access_key  # moto's fake one
    assert query["X-Amz-Credential"][0].startswith(f"{access_key}/")
    assert "/us-east-1/bedrock/aws4_request" in query["X-Amz-Credential"][0]

    server.advance(record.id, steps=5)
    done = await provider.get_job(record.id)
    assert done.status is JobStatus.SUCCEEDED and done.fine_tuned_model
    events = await provider.list_events(record.id)
    assert any(e.kind == "metrics" and e.metrics and e.metrics.step for e in events)
    checkpoints = await provider.list_checkpoints(record.id)
    assert checkpoints and all(isinstance(c, Checkpoint) for c in checkpoints)
    # No deployment step: the fine-tuned model is called on the same endpoint.
    assert await provider.deploy_checkpoint(checkpoints[-1]) == checkpoints[-1].model
    await provider.aclose()


async def test_the_providers_split_by_model(
    staged: None, server: FakeFineTuningServer, bedrock: SimpleNamespace, make_request: Any
) -> None:
    native = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(UsageError, match="provider 'bedrock-open-weight'"):
        native.check_spec(make_request(model="openai.gpt-oss-20b").spec)
    open_weight = _provider(server)
    with pytest.raises(UsageError, match="Nova models train with provider 'bedrock'"):
        open_weight.check_spec(make_request(model="amazon.nova-2-lite-v1:0:256k").spec)
    with pytest.raises(UsageError, match="allow_unknown_models"):
        open_weight.check_spec(make_request(model=None).spec)
    _provider(server, allow_unknown_models=True).check_spec(
        make_request(model="meta.llama-next").spec
    )


def test_registered_with_its_own_settings_and_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlft._config import Config, build_settings
    from rlft._plugins import PluginHost

    host = PluginHost(autoload=True)
    spec = host.provider_spec("bedrock-open-weight")
    assert spec.load() is BedrockOpenWeight
    monkeypatch.setenv("RLFT_BEDROCK_OPEN_WEIGHT_REGION", "us-west-2")
    monkeypatch.setenv("RLFT_BEDROCK_OPEN_WEIGHT_LAMBDA_MEMORY_MB", "1024")
    settings = build_settings(spec, Config())
    assert isinstance(settings, BedrockOpenWeightSettings)
    assert (settings.region, settings.lambda_memory_mb) == ("us-west-2", 1024)


async def test_a_native_grader_arn_is_used_as_is(
    staged: None,
    server: FakeFineTuningServer,
    make_request: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
    provider = _provider(server)
    file_id = await provider.upload_dataset(_dataset(), role="train")
    mine = "arn:aws:lambda:us-east-1:123456789012:function:mine"
    request = make_request({"lambda_arn": mine}, model="qwen.qwen3-32b-v1:0", key="ow-2")
    record = await provider.create_job(dataclasses.replace(request, training_file=file_id))
    body = json.loads(server.requests[-1].content)
    assert body["method"]["reinforcement"]["grader"] == {
        "type": "lambda",
        "lambda": {"function": mine},
    }
    assert server.requests[-1].headers["Authorization"] == "Bearer bedrock-api-key-from-env"
    assert [job.id for job in await provider.list_jobs()] == [record.id]
    cancelled = await provider.cancel_job(record.id)
    assert cancelled.status is JobStatus.CANCELLED
    await provider.aclose()


async def test_a_create_that_landed_despite_an_error_is_found_not_repeated(
    server: FakeFineTuningServer, make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
    lost = {"creates": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = server(request)  # the job is created...
        if request.method == "POST" and request.url.path == "/v1/fine_tuning/jobs":
            lost["creates"] += 1
            return httpx.Response(502, json={"error": {"message": "bad gateway"}})  # ...unseen
        return answer

    provider = BedrockOpenWeight(
        settings=BedrockOpenWeightSettings(
            region="us-east-1", file_poll_interval=0.001, max_attempts=1
        ),
        session=boto3.Session(),
        transport=httpx.MockTransport(flaky),
    )
    file_id = await provider.upload_dataset(_dataset(), role="train")
    mine = "arn:aws:lambda:us-east-1:123456789012:function:mine"
    request = make_request({"lambda_arn": mine}, model="openai.gpt-oss-20b", key="lost")
    request = dataclasses.replace(request, training_file=file_id)
    record = await provider.create_job(request)
    assert lost["creates"] == 1 and list(server.jobs) == [record.id]
    again = await provider.create_job(request)  # a retry with the same key: the same job
    assert again.id == record.id and lost["creates"] == 1
    # Only a new job with the same model, files and grader counts as the lost create.
    sent = dataclasses.replace(request, grader_payload=lambda_grader(mine))  # as create sends it
    found = await provider._landed(sent, before=set())
    assert found is not None and found.id == record.id
    assert await provider._landed(sent, before={record.id}) is None  # not new
    v2 = dataclasses.replace(sent, grader_payload=lambda_grader(mine + "-v2"))
    assert await provider._landed(v2, before=set()) is None  # another grader
    other = make_request({"lambda_arn": mine + "-v2"}, model="openai.gpt-oss-20b", key="x")
    # Nothing landed at all (the server refused before creating): the error is raised.
    server.fail_next.append(httpx.Response(503, json={"error": {"message": "down"}}))
    with pytest.raises(ServerError):
        await provider.create_job(dataclasses.replace(other, training_file=file_id))
    await provider.aclose()


async def test_pause_and_resume_say_why_not(server: FakeFineTuningServer) -> None:
    provider = _provider(server)
    with pytest.raises(CapabilityError, match="job.cancel"):
        await provider.pause_job("ftjob-1")
    with pytest.raises(CapabilityError, match="job.cancel"):
        await provider.resume_job("ftjob-1")
    await provider.aclose()


async def test_endpoint_rules_and_errors(
    staged: None, server: FakeFineTuningServer, make_request: Any
) -> None:
    provider = _provider(server)
    with pytest.raises(HyperparameterError, match="learning_rate"):
        provider.check_spec(
            make_request(
                model="openai.gpt-oss-20b", hyperparameters=Hyperparameters(learning_rate=1e-5)
            ).spec
        )
    server.fail_next.append(httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(AuthenticationError) as caught:
        await provider.get_job("ftjob-000001")
    token = provider.tokens.token()
    assert token not in str(caught.value) and token not in repr(vars(caught.value))
    await provider.aclose()


# --- the published mantle metrics event ---------------------------------------------------------


def _mantle_event() -> dict[str, Any]:
    fixture = json.loads((UPSTREAM / "mantle_metrics_event.json").read_text())
    assert fixture["_provenance"]["commit"].startswith("85fba9d9")
    event: dict[str, Any] = fixture["event"]
    return event


EXPECTED = StepMetrics(
    step=4,
    total_steps=67,
    train_reward_mean=0.4375,
    completion_length_mean=519.09375,
    extra={
        "entropy": 0.6235736012458801,
        "loss": 0.10153239965438844,
        "grad_norm": 0.0008667297661304474,
        "advantages_mean": 0.013622610829770563,
    },
)


def test_the_published_mantle_event_normalises() -> None:
    assert mantle_metrics(_mantle_event()["data"]) == EXPECTED
    # OpenAI's keys still mean what they mean if the endpoint sends them too.
    both = mantle_metrics({"step": 1, "scores": {"valid_reward_mean": 0.5}, "custom": 2})
    assert both.valid_reward_mean == 0.5 and both.extra == {"custom": 2.0}


async def test_metrics_events_from_the_endpoint_carry_the_train_reward(
    server: FakeFineTuningServer, make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
    provider = _provider(server)
    file_id = await provider.upload_dataset(_dataset(), role="train")
    mine = "arn:aws:lambda:us-east-1:123456789012:function:mine"
    request = make_request({"lambda_arn": mine}, model="openai.gpt-oss-20b", key="ow-3")
    record = await provider.create_job(dataclasses.replace(request, training_file=file_id))
    server.jobs[record.id].events.append(_mantle_event())
    (event,) = [e for e in await provider.list_events(record.id) if e.kind == "metrics"]
    assert event.metrics == EXPECTED
    assert event.message == "Step 4/67: training metrics"
    await provider.aclose()
