"""Datasets rendered to Bedrock's RFT JSONL and staged in S3 under a content-hash key, once."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import boto3
import pytest

from rlft.datasets import Dataset, render
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio


def _dataset(n: int = 120) -> Dataset:
    return Dataset.from_records(
        {
            "messages": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "reference_answer": {"final_answer": str(2 * i)},
            "task_id": f"t{i}",
        }
        for i in range(n)
    )


async def test_upload_renders_and_stages_once(
    provider: BedrockProvider, bedrock: SimpleNamespace
) -> None:
    dataset = _dataset()
    body = render(dataset, "bedrock")
    s3 = boto3.client("s3")
    puts: list[str] = []
    provider._aws.client("s3").meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: puts.append(params["url_path"])
    )

    uri = await provider.upload_dataset(dataset, role="train")
    key = f"stage/datasets/{hashlib.sha256(body).hexdigest()}.jsonl"
    assert uri == f"s3://{bedrock.bucket}/{key}"
    stored = s3.get_object(Bucket=bedrock.bucket, Key=key)["Body"].read()
    assert stored == body
    first = json.loads(stored.splitlines()[0])
    assert first["reference_answer"] == {"final_answer": "0"}
    assert first["messages"] == [{"role": "user", "content": "What is 0 + 0?"}]

    assert await provider.upload_dataset(_dataset(), role="validation") == uri  # reused
    assert len(puts) == 1
    other = await provider.upload_dataset(_dataset(101), role="train")
    assert other != uri and len(puts) == 2


async def test_upload_encrypts_with_the_kms_key(staged: None, bedrock: SimpleNamespace) -> None:
    provider = BedrockProvider(
        settings=bedrock.make_settings(kms_key_id="alias/rlft-data"), session=boto3.Session()
    )
    uri = await provider.upload_dataset(_dataset(), role="train")
    head = boto3.client("s3").head_object(Bucket=bedrock.bucket, Key=uri.split("/", 3)[3])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/rlft-data")


async def test_a_missing_bucket_is_not_found(aws: None, bedrock: SimpleNamespace) -> None:
    from rlft.exceptions import NotFoundError

    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(NotFoundError):
        await provider.upload_dataset(_dataset(), role="train")
