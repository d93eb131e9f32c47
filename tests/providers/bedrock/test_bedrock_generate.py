"""Preflight sampling through the Converse API, pinned with botocore's Stubber."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from rlft.exceptions import CapabilityError, PermissionDeniedError
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio

MODEL = "us.amazon.nova-2-lite-v1:0"


def _answer(text: str) -> dict[str, object]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
        "metrics": {"latencyMs": 5},
    }


async def test_converse_request_shape_and_answers(bedrock: SimpleNamespace) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    runtime = provider._aws.client("bedrock-runtime")
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "converse",
            _answer("billing"),
            expected_params={
                "modelId": MODEL,
                "messages": [{"role": "user", "content": [{"text": "my invoice is wrong"}]}],
                "system": [{"text": "triage"}],
                "inferenceConfig": {"maxTokens": 4},
            },
        )
        answers = await provider.generate(
            model=MODEL,
            prompts=[
                [
                    {"role": "system", "content": "triage"},
                    {"role": "user", "content": "my invoice is wrong"},
                ]
            ],
            max_tokens=4,
        )
        stubber.assert_no_pending_responses()
    assert answers == ["billing"]


async def test_access_denied_is_mapped(bedrock: SimpleNamespace) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    runtime = provider._aws.client("bedrock-runtime")
    with Stubber(runtime) as stubber:
        stubber.add_client_error(
            "converse",
            service_error_code="AccessDeniedException",
            service_message="no model access",
            http_status_code=403,
        )
        with pytest.raises(PermissionDeniedError, match="no model access"):
            await provider.generate(model=MODEL, prompts=[[{"role": "user", "content": "x"}]])


@pytest.mark.parametrize(
    ("job_model", "settings", "invoked"),
    [
        ("amazon.nova-2-lite-v1:0:256k", {}, "us.amazon.nova-2-lite-v1:0"),
        (None, {}, "us.amazon.nova-2-lite-v1:0"),  # the default base model
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0:256k",
            {"inference_scope": "global"},
            "global.amazon.nova-2-lite-v1:0",
        ),
        ("us.amazon.nova-2-lite-v1:0", {}, "us.amazon.nova-2-lite-v1:0"),  # already a profile
        (
            "amazon.nova-2-lite-v1:0:256k",
            {"inference_model": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x"},
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x",
        ),
    ],
)
async def test_the_fine_tuning_id_is_sampled_through_its_inference_profile(
    bedrock: SimpleNamespace, job_model: str | None, settings: dict[str, str], invoked: str
) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(**settings), session=boto3.Session())
    runtime = provider._aws.client("bedrock-runtime")
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "converse",
            _answer("bug"),
            expected_params={
                "modelId": invoked,
                "messages": [{"role": "user", "content": [{"text": "x"}]}],
            },
        )
        answers = await provider.generate(
            model=job_model, prompts=[[{"role": "user", "content": "x"}]]
        )
        stubber.assert_no_pending_responses()
    assert answers == ["bug"]


async def test_a_custom_model_needs_a_deployment_to_sample(bedrock: SimpleNamespace) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    custom = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-2-lite-v1:0:256k/abc"
    with pytest.raises(CapabilityError, match="inference_model to the deployment ARN"):
        await provider.generate(model=custom, prompts=[[{"role": "user", "content": "x"}]])
