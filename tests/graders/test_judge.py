"""Judges: the OpenAI-compatible one over httpx (MockTransport), and Bedrock Converse (Stubber)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from rlft import graders as g
from rlft.graders._runtime.engine import score_schema
from rlft.graders._runtime.judge import JudgeError, JudgeRequest, schema_instruction

pytestmark = pytest.mark.anyio

GRADER = g.ScoreModel(
    name="judge",
    model="gpt-4.1-mini",
    input=[
        g.Message(role="developer", content="Score 0-1: does it answer {{ item.q }}?"),
        g.Message(role="user", content="{{ sample.output_text }}"),
    ],
    sampling_params={"temperature": 0.0, "max_completions_tokens": 64, "seed": 1},
)


def completion(content: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }


async def test_openai_judge_request_and_score(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion('{"steps": [], "result": 0.6}'))

    judge = g.OpenAIJudge(
        base_url="http://judge.test/v1",
        api_key="sk-secret-123",
        transport=httpx.MockTransport(handler),
    )
    result = await GRADER.grade("Paris", {"q": "the capital"}, judge=judge)
    assert (result.score, result.errors) == (0.6, ())
    request = seen[0]
    assert str(request.url) == "http://judge.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret-123"
    body = json.loads(request.content)
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Score 0-1: does it answer the capital?"},
        {"role": "user", "content": "Paris"},
    ]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    # The grader spells it max_completions_tokens; chat completions wants max_completion_tokens.
    assert body["max_completion_tokens"] == 64 and "max_completions_tokens" not in body
    assert (body["temperature"], body["seed"]) == (0.0, 1)
    assert "sk-secret-123" not in repr(judge)


async def test_openai_judge_from_environment_and_model_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLFT_JUDGE_BASE_URL", "http://local.test/v1/")
    monkeypatch.setenv("RLFT_JUDGE_API_KEY", "k")
    monkeypatch.setenv("RLFT_JUDGE_MODEL", "qwen-local")
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        assert str(request.url).startswith("http://local.test/v1/")
        return httpx.Response(200, json=completion("0.9"))

    judge = g.OpenAIJudge(structured_outputs=False, transport=httpx.MockTransport(handler))
    result = await GRADER.grade("x", {"q": "y"}, judge=judge)
    assert result.score == 0.9
    assert bodies[0]["model"] == "qwen-local"
    assert "response_format" not in bodies[0]
    assert "JSON schema" in bodies[0]["messages"][-1]["content"]  # the schema, in words


async def test_openai_judge_retries_rate_limits_then_gives_up_clearly() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                429, headers={"retry-after": "0"}, json={"error": {"message": "slow"}}
            )
        return httpx.Response(200, json=completion('{"steps": [], "result": 1}'))

    judge = g.OpenAIJudge(
        base_url="http://j.test", api_key="k", transport=httpx.MockTransport(flaky)
    )
    assert (await GRADER.grade("x", {"q": "y"}, judge=judge)).score == 1.0
    assert calls == 2

    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "model not found"}})

    judge = g.OpenAIJudge(
        base_url="http://j.test", api_key="k", transport=httpx.MockTransport(refuses)
    )
    result = await GRADER.grade("x", {"q": "y"}, judge=judge)
    assert result.errors == ("model_server",)
    assert "HTTP 400 after 1 attempt(s): model not found" in (result.reason or "")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    judge = g.OpenAIJudge(
        base_url="http://j.test", max_retries=0, transport=httpx.MockTransport(down)
    )
    result = await GRADER.grade("x", {"q": "y"}, judge=judge)
    assert result.errors == ("model_server",) and "unreachable" in (result.reason or "")


async def test_openai_judge_refusal_and_garbage_bodies() -> None:
    def refusal(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"choices": [{"message": {"refusal": "no", "content": None}}]}
        )

    judge = g.OpenAIJudge(base_url="http://j.test", transport=httpx.MockTransport(refusal))
    with pytest.raises(JudgeError, match="refused"):
        await judge.complete(JudgeRequest(model="m", messages=[], schema={}))

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    judge = g.OpenAIJudge(base_url="http://j.test", transport=httpx.MockTransport(garbage))
    with pytest.raises(JudgeError, match="unreadable"):
        await judge.complete(JudgeRequest(model="m", messages=[], schema={}))


async def test_bedrock_judge_calls_converse() -> None:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    judge = g.BedrockJudge(client=client, model="amazon.nova-pro-v1:0")
    stub = Stubber(client)
    expected = {
        "modelId": "amazon.nova-pro-v1:0",
        "system": [{"text": "Score 0-1: does it answer the capital?"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Paris"},
                    {
                        "text": schema_instruction(score_schema())
                    },  # Converse has no JSON-schema mode
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.0},
    }
    reply = {
        "output": {
            "message": {"role": "assistant", "content": [{"text": '{"result": 0.8, "steps": []}'}]}
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    stub.add_response("converse", reply, expected)
    stub.add_client_error("converse", "ThrottlingException", "slow down")
    with stub:
        result = await GRADER.grade("Paris", {"q": "the capital"}, judge=judge)
        assert (result.score, result.errors) == (0.8, ())
        failed = await GRADER.grade("Paris", {"q": "the capital"}, judge=judge)
        assert failed.errors == ("model_server",) and "ThrottlingException" in (failed.reason or "")
    stub.assert_no_pending_responses()


def test_bedrock_converse_args_merge_turns_for_alternation() -> None:
    judge = g.BedrockJudge()
    args = judge.converse_args(
        JudgeRequest(
            model="anthropic.claude",
            schema={"type": "object"},
            messages=[
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
            ],
        )
    )
    assert [m["role"] for m in args["messages"]] == ["user", "assistant", "user"]
    assert args["messages"][0]["content"] == [{"text": "a"}, {"text": "b"}]
    assert args["modelId"] == "anthropic.claude" and "system" not in args
