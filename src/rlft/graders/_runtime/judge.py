"""Judges: the models ``score_model`` and ``label_model`` graders ask, behind one small interface.

Two implementations ship:

- ``OpenAIJudge``: any OpenAI-compatible ``/chat/completions`` endpoint over httpx (OpenAI,
  Azure's v1 route, vLLM, Ollama, LiteLLM, ...). The default for local grading and TRL.
- ``BedrockJudge``: Bedrock's Converse API through boto3 (in a thread). The default inside the
  Bedrock Lambda package, where boto3 is part of the runtime.

A judge returns the raw text; parsing it into a score lives in the engine, so every judge is
parsed the same way. Judges never log or repr their credentials. Part of the engine runtime that
is copied into the Lambda package: standard library only at import time.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from rlft.graders._runtime.images import ImageDataError, converse_image, image_url_of

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BedrockJudge",
    "Embedder",
    "Judge",
    "JudgeError",
    "JudgeRequest",
    "JudgeResponse",
    "OpenAIJudge",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class JudgeError(Exception):
    """The judge could not be reached or refused the request (``model_server``)."""


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: chat messages, the JSON schema wanted, and sampling settings.

    Attributes:
        model: The grader's ``model`` field.
        messages: Chat-Completions messages (``role``, ``content``: text or content parts).
        schema: The JSON schema of the expected answer (``{"result": ...}``).
        sampling: ``sampling_params`` with OpenAI's names (``max_completions_tokens``, ...).
    """

    model: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any]
    sampling: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeResponse:
    """What the judge said, as text, and its token usage when reported."""

    text: str
    usage: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Judge(Protocol):
    """Anything that answers a ``JudgeRequest``. Raise ``JudgeError`` when the call fails."""

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        """Ask the judge; return its raw answer."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Embeds texts for ``text_similarity`` with ``evaluation_metric="cosine"``."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class OpenAIJudge:
    """A judge on an OpenAI-compatible chat-completions endpoint, over httpx.

    Args:
        base_url: The API root (``https://api.openai.com/v1``, ``http://localhost:8000/v1``).
            Default: ``RLFT_JUDGE_BASE_URL``, then ``OPENAI_BASE_URL``, then OpenAI.
        api_key: Default: ``RLFT_JUDGE_API_KEY``, then ``OPENAI_API_KEY``. Never logged.
        model: Overrides every grader's ``model`` (e.g. a local model standing in for
            ``gpt-4.1``). Default: ``RLFT_JUDGE_MODEL``, else the grader's own.
        structured_outputs: Send ``response_format: json_schema``. Turn off for servers that
            don't support it; the schema is then described in an extra user message.
        timeout: Seconds per request.
        max_retries: Extra attempts on 408/429/5xx and connection errors (with backoff and
            ``Retry-After``). The judge is the only HTTP layer on this path, so it retries here.
        transport: An ``httpx.AsyncBaseTransport``, for tests (``httpx.MockTransport``).
        headers: Extra headers (e.g. ``{"api-key": ...}`` for Azure's classic route).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        structured_outputs: bool = True,
        timeout: float = 60.0,
        max_retries: int = 2,
        transport: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = (
            base_url
            or os.environ.get("RLFT_JUDGE_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or DEFAULT_BASE_URL
        ).rstrip("/")
        self._api_key = (
            api_key or os.environ.get("RLFT_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        )
        self.model = model or os.environ.get("RLFT_JUDGE_MODEL") or None
        self.structured_outputs = structured_outputs
        self.timeout = timeout
        self.max_retries = max_retries
        self._transport = transport
        self._headers = dict(headers or {})

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"OpenAIJudge(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    def _body(self, request: JudgeRequest) -> dict[str, Any]:
        messages = list(request.messages)
        body: dict[str, Any] = {"model": self.model or request.model}
        if self.structured_outputs:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "grade", "strict": True, "schema": request.schema},
            }
        else:
            messages.append({"role": "user", "content": schema_instruction(request.schema)})
        body["messages"] = messages
        sampling = request.sampling
        for name in ("temperature", "top_p", "seed", "reasoning_effort"):
            if sampling.get(name) is not None:
                body[name] = sampling[name]
        if sampling.get("max_completions_tokens") is not None:
            # The grader spells it max_completions_tokens; chat completions max_completion_tokens.
            body["max_completion_tokens"] = sampling["max_completions_tokens"]
        return body

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        """POST ``/chat/completions`` and return the first choice's text.

        Raises:
            JudgeError: Transport failure, a non-2xx status after retries, or a malformed body.
        """
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is a core dependency
            raise JudgeError("the OpenAI-compatible judge needs httpx: pip install httpx") from exc
        headers = {"content-type": "application/json", **self._headers}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        body = self._body(request)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=self._transport
        ) as client:
            response = await self._post(client, body, headers)
        try:
            data = response.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge returned an unreadable body: {response.text[:200]!r}") from exc
        if message.get("refusal"):
            raise JudgeError(f"judge refused: {str(message['refusal'])[:200]}")
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        return JudgeResponse(text=text, usage=data.get("usage") or {})

    async def _post(
        self, client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        import httpx

        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await client.post("/chat/completions", json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt > self.max_retries:
                    raise JudgeError(
                        f"judge at {self.base_url} unreachable after {attempt} attempt(s): "
                        f"{type(exc).__name__}"
                    ) from None
            else:
                if response.is_success:
                    return response
                if response.status_code not in _RETRY_STATUSES or attempt > self.max_retries:
                    raise JudgeError(
                        f"judge at {self.base_url} answered HTTP {response.status_code} after "
                        f"{attempt} attempt(s): {_error_text(response)}"
                    )
                retry_after = _retry_after(response)
            delay = retry_after if retry_after is not None else 0.5 * 2 ** (attempt - 1)
            await anyio.sleep(min(delay, 30.0) * (0.5 + random.random() / 2))


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, Mapping):
            return str(error.get("message", ""))[:300]
    except ValueError:
        pass
    return response.text[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The answer format as plain words, for judges without structured outputs."""
    import json

    return (
        "Answer with only a JSON object matching this JSON schema, and nothing else: "
        + json.dumps(schema, separators=(",", ":"))
    )


class BedrockJudge:
    """A judge on Amazon Bedrock's Converse API (boto3, run in a worker thread).

    Converse has no JSON-schema response format, so the schema is described in an extra user
    message and the engine parses the answer leniently (the first JSON object in the text).

    Args:
        region: AWS region; default from the environment (``AWS_REGION`` in Lambda).
        model: Overrides every grader's ``model`` with a Bedrock model id or inference profile.
        client: A ready ``bedrock-runtime`` client (tests pass a stubbed one).
        limiter: Bounds concurrent calls (threads).
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        model: str | None = None,
        client: Any = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.region = region
        self.model = model
        self._client = client
        self._limiter = limiter

    def __repr__(self) -> str:
        return f"BedrockJudge(region={self.region!r}, model={self.model!r})"

    def _runtime(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:
                raise JudgeError("the Bedrock judge needs boto3: pip install boto3") from exc
            self._client = boto3.client("bedrock-runtime", region_name=self.region)
        return self._client

    def converse_args(self, request: JudgeRequest) -> dict[str, Any]:
        """The ``converse`` keyword arguments for a request (public for tests).

        Image parts become Converse image blocks with the image's bytes; Converse takes no
        URLs, so an https image raises ``JudgeError`` (the grade fails closed, with the reason).
        """
        system: list[dict[str, str]] = []
        turns: list[dict[str, Any]] = []
        for message in request.messages:
            if message.get("role") in ("system", "developer"):
                system.append({"text": _content_text(message.get("content"))})
                continue
            blocks = _converse_blocks(message.get("content"))
            role = "assistant" if message.get("role") == "assistant" else "user"
            if turns and turns[-1]["role"] == role:  # Converse wants alternating turns
                turns[-1]["content"].extend(blocks)
            else:
                turns.append({"role": role, "content": blocks})
        instruction = {"text": schema_instruction(request.schema)}
        if turns and turns[-1]["role"] == "user":
            turns[-1]["content"].append(instruction)
        else:
            turns.append({"role": "user", "content": [instruction]})
        args: dict[str, Any] = {"modelId": self.model or request.model, "messages": turns}
        if system:
            args["system"] = system
        config: dict[str, Any] = {}
        sampling = request.sampling
        if sampling.get("max_completions_tokens") is not None:
            config["maxTokens"] = sampling["max_completions_tokens"]
        if sampling.get("temperature") is not None:
            config["temperature"] = sampling["temperature"]
        if sampling.get("top_p") is not None:
            config["topP"] = sampling["top_p"]
        if config:
            args["inferenceConfig"] = config
        return args

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        """Call ``converse`` in a thread and return the text of the reply.

        Raises:
            JudgeError: boto3 is missing, or the call failed.
        """
        try:
            args = self.converse_args(request)
        except ImageDataError as exc:
            raise JudgeError(f"Bedrock judge: {exc}") from None

        def call() -> Any:
            return self._runtime().converse(**args)

        try:
            reply = await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except JudgeError:
            raise
        except Exception as exc:  # botocore errors, without importing botocore here
            raise JudgeError(f"Bedrock converse failed: {type(exc).__name__}: {exc}") from None
        try:
            parts = reply["output"]["message"]["content"]
        except (KeyError, TypeError) as exc:
            raise JudgeError("Bedrock converse returned no message") from exc
        text = "".join(part.get("text", "") for part in parts if isinstance(part, Mapping))
        return JudgeResponse(text=text, usage=reply.get("usage") or {})


def _converse_blocks(content: Any) -> list[dict[str, Any]]:
    """A chat message's content as Converse content blocks: text, and images as bytes."""
    if isinstance(content, str) or not isinstance(content, Sequence):
        return [{"text": _content_text(content)}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        url = image_url_of(part)
        if url is not None:
            blocks.append(converse_image(url))
        else:
            blocks.append({"text": str(part.get("text", ""))})
    return blocks or [{"text": ""}]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""
