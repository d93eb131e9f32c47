"""Azure uploads image prompts in OpenAI's chat format, with a warning: its current RFT page
(MicrosoftDocs/azure-ai-docs @ 421dfa9, 2026-03-19) no longer says images are unsupported, as
the May-2025 page did, but documents none either. Limits come from Azure's vision fine-tuning
page (64 images per example, 10 MB, JPEG/PNG/WEBP); rows over them are refused before upload."""

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
from PIL import Image

import rlft
from rlft.datasets import Dataset
from rlft.exceptions import DatasetValidationError
from rlft.graders import StringCheck
from rlft_providers.azure._provider import AzureProvider
from rlft_providers.azure._settings import AzureSettings

pytestmark = pytest.mark.anyio

ENDPOINT = "https://res.openai.azure.com"
KEY = "azure-test-images-0123456789abcdef"
GRADER = StringCheck(
    name="s", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)


def image(fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 5), "red").save(buffer, format=fmt)
    mime = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif"}[fmt]
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def rows(count: int = 1, fmt: str = "PNG") -> list[dict[str, Any]]:
    parts = [{"type": "image_url", "image_url": {"url": image(fmt)}}] * count
    content = [{"type": "text", "text": "Which colour?"}, *parts]
    return [{"messages": [{"role": "user", "content": content}], "label": "red"}] * 2


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
            return httpx.Response(201, json={"id": "file-a", "status": "processed"})

        route = router.post(url__regex=rf"^{ENDPOINT}/openai/(v1/)?files").mock(side_effect=upload)
        yield route, seen


async def test_azure_uploads_image_parts_as_they_are(files: Any) -> None:
    route, seen = files
    dataset = Dataset.from_records(rows(3))
    report = dataset.validate(provider="azure", validation=dataset)
    assert report.ok and "content-not-supported" in {p.code for p in report.warnings}
    provider = AzureProvider(settings=AzureSettings(endpoint=ENDPOINT, api_key=KEY))
    assert await provider.upload_dataset(dataset, role="train") == "file-a"
    first = json.loads(seen[0].splitlines()[0])
    assert (
        first["messages"][0]["content"][1:]
        == [{"type": "image_url", "image_url": {"url": image()}}] * 3
    )


@pytest.mark.parametrize(
    ("count", "fmt", "code"), [(65, "PNG", "too-many-images"), (1, "GIF", "image-format")]
)
async def test_rows_over_azures_limits_are_refused_before_any_upload(
    files: Any, tmp_path: Path, count: int, fmt: str, code: str
) -> None:
    route, _ = files
    settings = {"endpoint": ENDPOINT, "api_key": KEY}
    async with rlft.Client(
        provider="azure", settings=settings, autoload=False, store=tmp_path / "j.db"
    ) as client:
        with pytest.raises(DatasetValidationError) as info:
            await client.jobs.create(
                train=Dataset.from_records(rows(count, fmt)),
                validation=Dataset.from_records(rows(1)),
                grader=GRADER,
                model="o4-mini",
            )
    assert code in str(info.value)
    assert not route.called
