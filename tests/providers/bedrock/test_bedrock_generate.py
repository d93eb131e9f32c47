"""Preflight sampling through the Converse API, pinned with botocore's Stubber."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from rlft.exceptions import PermissionDeniedError
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
