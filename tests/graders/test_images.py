"""Graders with images: the runtime's header reader, judges that receive images (OpenAI-compatible
parts, Bedrock Converse image blocks), python graders that get metadata (or bytes when they ask),
and targets that cannot see images refusing the grader at compile time."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from PIL import Image

from rlft import graders as g
from rlft.exceptions import GraderNotSupportedError
from rlft.graders._runtime.engine import judge_messages, score_schema
from rlft.graders._runtime.images import (
    converse_image,
    describe,
    dimensions,
    images_for_python,
    sniff,
    wants_bytes,
)
from rlft.graders._runtime.judge import schema_instruction
from rlft.graders._sandbox.pool import SandboxPool

pytestmark = pytest.mark.anyio


def picture(
    fmt: str = "PNG", size: tuple[int, int] = (9, 4), mode: str = "RGB", **kw: Any
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red" if mode != "L" else 128).save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    fmt = sniff(data)
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


PNG = picture()
PNG_URL = data_url(PNG)


def judge_grader(image: Any = "{{ item.image }}") -> g.ScoreModel:
    return g.ScoreModel(
        name="looks",
        model="gpt-4.1-mini",
        input=[
            g.Message(role="developer", content="Score 0-1: is the answer the image's colour?"),
            g.Message(
                role="user",
                content=[
                    {"type": "input_text", "text": "Answer: {{ sample.output_text }}"},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                ],
            ),
        ],
    )


# --- the stdlib header reader -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kw", "mode"),
    [
        ("PNG", {}, "RGB"),
        ("JPEG", {}, "RGB"),
        ("JPEG", {"progressive": True}, "L"),
        ("GIF", {}, "RGB"),
        ("WEBP", {"lossless": False}, "RGB"),  # VP8
        ("WEBP", {"lossless": True}, "RGB"),  # VP8L
        ("WEBP", {"lossless": False}, "RGBA"),  # VP8X (alpha)
    ],
)
def test_header_dimensions_match_pillow(fmt: str, kw: dict[str, Any], mode: str) -> None:
    for size in [(1, 1), (37, 5), (300, 1021)]:
        data = picture(fmt, size, mode, **kw)
        assert sniff(data) == fmt.lower()
        assert dimensions(data) == Image.open(io.BytesIO(data)).size == size


def test_describe_is_stable_metadata() -> None:
    info = describe(PNG)
    assert info == {
        "type": "image",
        "format": "png",
        "mime": "image/png",
        "width": 9,
        "height": 4,
        "bytes": len(PNG),
        "sha256": hashlib.sha256(PNG).hexdigest(),
    }
    assert base64.b64decode(describe(PNG, with_bytes=True)["base64"]) == PNG


def test_images_for_python_replaces_inline_images_only() -> None:
    items = [
        {"label": "red", "n": 3},
        {"image": PNG_URL, "photos": [PNG_URL, "https://x/a.png"], "label": "red"},
        {
            "part": {"type": "image_url", "image_url": {"url": PNG_URL}},
            "pil": Image.open(io.BytesIO(PNG)),
        },
    ]
    out = images_for_python(items, "def grade(sample, item):\n    return 1.0\n")
    assert out[0] is items[0]  # text-only items are passed through untouched
    assert out[1]["image"]["width"] == 9 and out[1]["photos"][1] == "https://x/a.png"
    assert out[2]["part"]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert out[2]["pil"]["format"] == "png" and "base64" not in out[2]["pil"]
    assert items[1]["image"] == PNG_URL  # the caller's items are not changed
    asks = "RLFT_IMAGE_BYTES = True\ndef grade(sample, item):\n    return 1.0\n"
    assert wants_bytes(asks) and not wants_bytes("# RLFT_IMAGE_BYTES = True\n")
    assert "base64" in images_for_python(items, asks)[1]["image"]


# --- judges -------------------------------------------------------------------------------------


def test_item_image_fields_render_into_image_parts() -> None:
    grader = judge_grader().to_dict()
    sample = {"output_text": "red", "output_json": None}
    for value in (
        PNG_URL,
        {"type": "image_url", "image_url": {"url": PNG_URL}},
        {"type": "input_image", "image_url": PNG_URL},
    ):
        messages = judge_messages(grader, sample, {"image": value})
        assert messages[1]["content"][1] == {
            "type": "image_url",
            "image_url": {"url": PNG_URL, "detail": "low"},
        }
    # A URL written around the variable is text templating, as before.
    around = judge_grader("https://img.test/{{ item.name }}.png").to_dict()
    rendered = judge_messages(around, sample, {"name": "cat"})
    assert rendered[1]["content"][1]["image_url"]["url"] == "https://img.test/cat.png"


async def test_a_field_that_is_not_an_image_fails_closed(judge_factory: Any) -> None:
    judge = judge_factory('{"result": 1.0, "steps": []}')
    result = await judge_grader().grade("red", {"image": {"not": "an image"}}, judge=judge)
    assert result.score == 0.0 and result.errors == ("invalid_variable",)
    assert "is not an image" in (result.reason or "") and judge.requests == []


async def test_openai_compatible_judge_receives_image_parts() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        reply = {"choices": [{"message": {"role": "assistant", "content": '{"result": 0.9}'}}]}
        return httpx.Response(200, json=reply)

    judge = g.OpenAIJudge(base_url="http://judge.test/v1", transport=httpx.MockTransport(handler))
    result = await judge_grader().grade("red", {"image": PNG_URL}, judge=judge)
    assert (result.score, result.errors) == (0.9, ())
    assert seen[0]["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Answer: red"},
            {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        ],
    }


def test_label_model_judges_receive_images_too() -> None:
    grader = g.LabelModel(
        name="colour",
        model="gpt-4.1-mini",
        input=[
            g.Message(
                role="user", content=[{"type": "input_image", "image_url": "{{ item.image }}"}]
            )
        ],
        labels=["red", "blue"],
        passing_labels=["red"],
    ).to_dict()
    messages = judge_messages(grader, {"output_text": "x", "output_json": None}, {"image": PNG_URL})
    assert messages[0]["content"] == [{"type": "image_url", "image_url": {"url": PNG_URL}}]


def _runtime_client() -> Any:
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )


async def test_bedrock_judge_sends_converse_image_blocks() -> None:
    client = _runtime_client()
    judge = g.BedrockJudge(client=client, model="amazon.nova-pro-v1:0")
    expected = {
        "modelId": "amazon.nova-pro-v1:0",
        "system": [{"text": "Score 0-1: is the answer the image's colour?"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Answer: red"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                    {"text": schema_instruction(score_schema())},
                ],
            }
        ],
    }
    reply = {
        "output": {"message": {"role": "assistant", "content": [{"text": '{"result": 0.7}'}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    stub = Stubber(client)  # checks the call against botocore's bedrock-runtime model too
    stub.add_response("converse", reply, expected)
    with stub:
        result = await judge_grader().grade("red", {"image": PNG_URL}, judge=judge)
    assert (result.score, result.errors) == (0.7, ())
    stub.assert_no_pending_responses()


async def test_bedrock_judge_refuses_image_urls_failing_closed() -> None:
    client = _runtime_client()
    judge = g.BedrockJudge(client=client, model="amazon.nova-pro-v1:0")
    with Stubber(client) as stub:  # no response queued: any call would fail the test
        signed = "https://x/a.png?X-Amz-Signature=SECRET123"
        result = await judge_grader().grade("red", {"image": signed}, judge=judge)
        stub.assert_no_pending_responses()
    assert result.score == 0.0 and result.errors == ("model_server",)
    assert "Converse takes image bytes, not URLs" in (result.reason or "")
    assert "SECRET123" not in (result.reason or "")  # a signed URL's token is never shown
    with pytest.raises(ValueError, match="not PNG, JPEG, GIF or WebP"):
        converse_image("data:image/png;base64," + base64.b64encode(b"BM bitmap").decode())


# --- python graders -----------------------------------------------------------------------------

METADATA = """
def grade(sample, item):
    image = item["image"]
    ok = image["format"] == "png" and (image["width"], image["height"]) == (9, 4)
    return 1.0 if ok and image["sha256"] == item["digest"] and "base64" not in image else 0.0
"""

BYTES = """
import base64
RLFT_IMAGE_BYTES = True

def grade(sample, item):
    data = base64.b64decode(item["image"]["base64"])
    return float(len(data) == item["image"]["bytes"] and data[:4] == b"\\x89PNG")
"""


async def test_python_graders_get_image_metadata_not_bytes(pool: SandboxPool) -> None:
    item = {"image": PNG_URL, "digest": hashlib.sha256(PNG).hexdigest()}
    result = await g.Python(name="meta", source=METADATA).grade("x", item, pool=pool)
    assert (result.score, result.errors) == (1.0, ())
    many = await g.grade_many(
        g.Python(name="meta", source=METADATA), ["x"] * 20, [item] * 20, pool=pool
    )
    assert [r.score for r in many] == [1.0] * 20  # the batch path converts too


async def test_python_graders_that_ask_get_the_bytes(pool: SandboxPool) -> None:
    result = await g.Python(name="bytes", source=BYTES).grade("x", {"image": PNG_URL}, pool=pool)
    assert (result.score, result.errors) == (1.0, ())


# --- targets that cannot see images ------------------------------------------------------------


@pytest.mark.parametrize("target", ["bedrock", "bedrock-open-weight", "lambda"])
def test_compiling_an_image_grader_for_a_text_only_target_is_refused(target: str) -> None:
    with pytest.raises(GraderNotSupportedError) as info:
        g.compile(judge_grader(), target)
    error = info.value
    assert error.path == "input[1].content[1]" and error.target == target
    assert "never sees one" in str(error) and "openai" in str(error)
    inside = g.Multi(name="m", graders={"look": judge_grader()}, calculate_output="look")
    with pytest.raises(GraderNotSupportedError, match=r"graders\.look\.input\[1\]"):
        g.check_support(inside, target) if hasattr(g, "check_support") else g.compile(
            inside, target
        )
    with pytest.raises(GraderNotSupportedError, match="source"):
        g.compile(g.Python(name="b", source=BYTES), target)


def test_targets_that_see_images_compile_image_graders() -> None:
    payload = g.compile(judge_grader(), "openai")
    part = payload["input"][1]["content"][1]
    assert part == {"type": "input_image", "image_url": "{{ item.image }}", "detail": "low"}
    assert g.compile(judge_grader(), "azure")["input"][1]["content"][1] == part
    assert g.compile(judge_grader(), "local") is not None
    assert callable(g.compile(judge_grader(), "trl"))
    # A text-only grader still compiles for Bedrock.
    text = g.StringCheck(
        name="s", input="{{ sample.output_text }}", reference="red", operation="eq"
    )
    assert g.compile(text, "lambda").files
