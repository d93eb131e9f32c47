"""Bedrock RFT is text-only ("Text only. Multimodal inputs are not supported for RFT", AWS's
nova-rft guide): a dataset with images is refused before anything reaches S3, naming the rows
and the backends that take images; so is a grader that reads images (moto)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from PIL import Image

import rlft
from rlft.datasets import Dataset
from rlft.exceptions import DatasetValidationError, GraderNotSupportedError
from rlft.graders import Message, ScoreModel, StringCheck

pytestmark = pytest.mark.anyio

GRADER = StringCheck(
    name="s",
    input="{{ sample.output_text }}",
    reference="{{ item.reference_answer }}",
    operation="eq",
)


def png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def rows(with_images: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": f"ticket {i}"}], "reference_answer": "bug"}
        for i in range(100)
    ]
    for index in with_images:
        content = [
            {"type": "text", "text": "what is in the picture?"},
            {"type": "input_image", "image_url": png()},
        ]
        out[index] = {"messages": [{"role": "user", "content": content}], "reference_answer": "red"}
    return out


def _client(bedrock: SimpleNamespace, tmp_path: Path, provider: str = "bedrock") -> rlft.Client:
    settings = bedrock.make_settings().model_dump(exclude_defaults=True)
    return rlft.Client(
        provider=provider, settings=settings, autoload=False, store=tmp_path / "jobs.db"
    )


def _nothing_staged(bedrock: SimpleNamespace, botocore_model: SimpleNamespace) -> None:
    listing = boto3.client("s3").list_objects_v2(Bucket=bedrock.bucket)
    assert listing.get("KeyCount", 0) == 0
    assert not [call for call in botocore_model.sent if call[1] in ("PutObject", "CreateFunction")]


async def test_an_image_dataset_is_refused_before_any_upload(
    staged: None, bedrock: SimpleNamespace, botocore_model: SimpleNamespace, tmp_path: Path
) -> None:
    async with _client(bedrock, tmp_path) as client:
        with pytest.raises(DatasetValidationError) as info:
            await client.jobs.create(
                train=Dataset.from_records(rows((3, 41))), grader=GRADER, name="images"
            )
    report = info.value.report
    assert [(p.row, p.code) for p in report.errors] == [
        (3, "content-not-supported"),
        (41, "content-not-supported"),
    ]
    problem = report.errors[0]
    assert problem.field == "messages[0].content[1].type"
    assert "Multimodal inputs are not supported" in problem.message
    assert "openai" in problem.fix and "local" in problem.fix
    _nothing_staged(bedrock, botocore_model)


async def test_a_grader_that_reads_images_is_refused_before_any_upload(
    staged: None, bedrock: SimpleNamespace, botocore_model: SimpleNamespace, tmp_path: Path
) -> None:
    judge = ScoreModel(
        name="looks",
        model="amazon.nova-pro-v1:0",
        input=[
            Message(
                role="user",
                content=[
                    {"type": "input_text", "text": "{{ sample.output_text }}"},
                    {"type": "input_image", "image_url": "{{ item.image }}"},
                ],
            )
        ],
    )
    async with _client(bedrock, tmp_path) as client:
        with pytest.raises(GraderNotSupportedError) as info:
            # The rows name an image the grader would read; the rows themselves are text.
            train = [{**row, "image": "https://example.com/x.png"} for row in rows()]
            await client.jobs.create(train=Dataset.from_records(train), grader=judge)
    assert info.value.path == "input[0].content[1]"
    assert "text-only rows" in str(info.value)
    _nothing_staged(bedrock, botocore_model)


def test_both_bedrock_backends_refuse_image_rows() -> None:
    data = Dataset.from_records(rows((0,)))
    for provider in ("bedrock", "bedrock-open-weight"):
        report = data.validate(provider=provider)
        assert [(p.row, p.code) for p in report.errors] == [(0, "content-not-supported")]
