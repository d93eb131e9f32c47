"""OpenAI uploads image prompts in its own format: the uploaded JSONL keeps the chat-format image
parts, and every user message validates against the vendored OpenAPI schema
(``ChatCompletionRequestUserMessage``, openai-openapi @ f85dbe2). Rows over OpenAI's image limits
are refused before any request."""

from __future__ import annotations

import base64
import email
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from jsonschema import Draft202012Validator
from PIL import Image

import rlft
from rlft.datasets import Dataset
from rlft.exceptions import DatasetValidationError
from rlft.graders import StringCheck
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

pytestmark = pytest.mark.anyio

SPEC = json.loads((Path(__file__).parent / "upstream" / "openai_openapi.pruned.json").read_text())
KEY = "sk-test-images-0123456789abcdef"
GRADER = StringCheck(
    name="s", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)


def _refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("#/$defs/" + v.rsplit("/", 1)[-1] if k == "$ref" else _refs(v))
            for k, v in node.items()
            if not k.startswith("x-")
        }
    if isinstance(node, list):
        return [_refs(v) for v in node]
    return node


USER_MESSAGE = Draft202012Validator(
    {
        "$defs": _refs(SPEC["components"]["schemas"]),
        "$ref": "#/$defs/ChatCompletionRequestUserMessage",
    }
)


def png(colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def rows(images: int = 1) -> list[dict[str, Any]]:
    out = []
    for colour in ("red", "green", "blue"):
        parts = [{"type": "input_image", "image_url": png(colour), "detail": "low"}] * images
        content = [{"type": "text", "text": "Which colour?"}, *parts]
        out.append({"messages": [{"role": "user", "content": content}], "label": colour})
    out.append(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Which colour?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/p.png"}},
                    ],
                }
            ],
            "label": "purple",
        }
    )
    return out


def uploaded_file(request: httpx.Request) -> bytes:
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.content)
    for part in message.get_payload():  # type: ignore[union-attr]
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)  # type: ignore[no-any-return]
    raise AssertionError("no file part in the upload")


@pytest.fixture
def files() -> Any:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        seen: list[bytes] = []

        def upload(request: httpx.Request) -> httpx.Response:
            seen.append(uploaded_file(request))
            body = {"id": f"file-{len(seen)}", "object": "file", "status": "processed"}
            return httpx.Response(200, json=body)

        route = router.post("https://api.openai.com/v1/files").mock(side_effect=upload)
        yield route, seen


async def test_image_prompts_upload_as_chat_image_parts(files: Any) -> None:
    route, seen = files
    dataset = Dataset.from_records(rows())
    assert dataset.validate(provider="openai", validation=dataset).ok
    provider = OpenAIProvider(settings=OpenAISettings(api_key=KEY))
    assert await provider.upload_dataset(dataset, role="train") == "file-1"
    lines = [json.loads(line) for line in seen[0].splitlines()]
    assert [line["label"] for line in lines] == ["red", "green", "blue", "purple"]
    for line in lines:
        for message in line["messages"]:
            errors = list(USER_MESSAGE.iter_errors(message))
            assert not errors, [e.message[:200] for e in errors]
    image = lines[0]["messages"][0]["content"][1]
    assert image == {"type": "image_url", "image_url": {"url": png("red"), "detail": "low"}}
    assert lines[3]["messages"][0]["content"][1]["image_url"]["url"] == "https://example.com/p.png"


def test_the_schema_check_would_catch_a_wrong_image_shape() -> None:
    wrong = {"role": "user", "content": [{"type": "input_image", "image_url": png("red")}]}
    assert list(USER_MESSAGE.iter_errors(wrong))


async def test_rows_over_openais_image_limit_are_refused_before_any_upload(
    files: Any, tmp_path: Path
) -> None:
    route, _ = files
    train = Dataset.from_records(rows(images=11))
    async with rlft.Client(
        provider="openai", settings={"api_key": KEY}, autoload=False, store=tmp_path / "j.db"
    ) as client:
        with pytest.raises(DatasetValidationError) as info:
            await client.jobs.create(
                train=train, validation=Dataset.from_records(rows()), grader=GRADER, model="o4-mini"
            )
    assert "too-many-images" in str(info.value) and "up to 10 per row" in str(info.value)
    assert not route.called
