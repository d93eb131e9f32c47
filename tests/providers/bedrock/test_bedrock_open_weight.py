"""Open-weight models through Bedrock's OpenAI-compatible endpoint, on the shared fake server.

The grader Lambda and the S3 staging run on moto; the endpoint is ``rlft.testing``'s
``FakeFineTuningServer`` behind an ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from rlft._models import Checkpoint, Hyperparameters, JobStatus
from rlft.datasets import Dataset
from rlft.exceptions import AuthenticationError, HyperparameterError
from rlft.testing import FakeFineTuningServer
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio

BASE = "https://bedrock-mantle.us-east-1.api.aws/v1"


@pytest.fixture
def server() -> FakeFineTuningServer:
    return FakeFineTuningServer(prefix="/v1")


def _provider(server: FakeFineTuningServer, bedrock: SimpleNamespace, **settings: Any) -> Any:
    return BedrockProvider(
        settings=bedrock.make_settings(file_poll_interval=0.001, **settings),
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


async def test_the_model_id_selects_the_endpoint(
    staged: None,
    server: FakeFineTuningServer,
    bedrock: SimpleNamespace,
    make_request: Any,
) -> None:
    provider = _provider(server, bedrock)
    spec_hp = Hyperparameters(epochs=1, batch_size=4, learning_rate_multiplier=1.0)
    request = make_request(model="openai.gpt-oss-20b", hyperparameters=spec_hp)
    provider.check_spec(request.spec)
    staged_uri = await provider.upload_dataset(_dataset(), role="train")  # S3 first: the model
    assert staged_uri.startswith("s3://")  # is only known at create time
    request = type(request)(
        spec=request.spec,
        grader_payload=request.grader_payload,
        training_file=staged_uri,
        validation_file=None,
        idempotency_key="ow-1",
    )

    record = await provider.create_job(request)

    assert record.id.startswith("ftjob-") and record.provider == "bedrock"
    assert (record.status, record.provider_status) == (JobStatus.PENDING, "validating_files")
    create = next(r for r in server.requests if r.url.path == "/v1/fine_tuning/jobs")
    body = json.loads(create.content)
    function = boto3.client("lambda").get_function_configuration(FunctionName="rlft-grader-label")
    assert body == {
        "model": "openai.gpt-oss-20b",
        "training_file": body["training_file"],
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
    # The S3-staged bytes went on to the endpoint unchanged.
    s3_key = staged_uri.split("/", 3)[3]
    staged_bytes = boto3.client("s3").get_object(Bucket=bedrock.bucket, Key=s3_key)["Body"].read()
    assert server.contents[body["training_file"]] == staged_bytes
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


async def test_the_switch_sends_everything_to_the_endpoint(
    staged: None,
    server: FakeFineTuningServer,
    bedrock: SimpleNamespace,
    make_request: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
    provider = _provider(server, bedrock, open_weight=True)
    file_id = await provider.upload_dataset(_dataset(), role="train")
    assert file_id.startswith("file-")
    request = make_request(model="qwen.qwen3-32b-v1:0", key="ow-2")
    request = type(request)(
        spec=request.spec,
        grader_payload={"lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:mine"},
        training_file=file_id,
        validation_file=None,
        idempotency_key="ow-2",
    )
    record = await provider.create_job(request)
    assert server.requests[-1].headers["Authorization"] == "Bearer bedrock-api-key-from-env"
    assert [job.id for job in await provider.list_jobs()] == [record.id]
    cancelled = await provider.cancel_job(record.id)
    assert cancelled.status is JobStatus.CANCELLED
    await provider.aclose()


async def test_endpoint_rules_and_errors(
    staged: None, server: FakeFineTuningServer, bedrock: SimpleNamespace, make_request: Any
) -> None:
    provider = _provider(server, bedrock, open_weight=True)
    with pytest.raises(HyperparameterError, match="learning_rate"):
        provider.check_spec(
            make_request(
                model="openai.gpt-oss-20b", hyperparameters=Hyperparameters(learning_rate=1e-5)
            ).spec
        )
    server.fail_next.append(httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(AuthenticationError) as caught:
        await provider.get_job("ftjob-000001")
    token = provider.open_weight.tokens.token()
    assert token not in str(caught.value) and token not in repr(vars(caught.value))
    await provider.aclose()
