"""The whole path through ``rlft.Client``: checks, S3 staging, the compiled Lambda, the job."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

import rlft
from rlft.exceptions import HyperparameterError

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[3] / "examples" / "bedrock_rft.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("bedrock_rft_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(bedrock: SimpleNamespace, tmp_path: Path) -> rlft.Client:
    settings = bedrock.make_settings().model_dump(exclude_defaults=True)
    return rlft.Client(
        provider="bedrock", settings=settings, autoload=False, store=tmp_path / "jobs.db"
    )


async def test_the_example_job_runs_end_to_end_on_moto(
    staged: None, bedrock: SimpleNamespace, tmp_path: Path, set_job_status: Any
) -> None:
    example = _example()
    async with _client(bedrock, tmp_path) as client:
        job = await client.jobs.create(
            train=example.sums(),
            grader=example.GRADER,
            hyperparameters=rlft.Hyperparameters(epochs=1, batch_size=16, samples_per_prompt=4),
            name="rlft-arithmetic",
        )
        assert job.provider == "bedrock" and job.id.startswith("arn:aws:bedrock:")
        # The staged training file is exactly Bedrock's rendering of the data.
        objects = boto3.client("s3").list_objects_v2(Bucket=bedrock.bucket)["Contents"]
        keys = sorted(o["Key"] for o in objects)
        assert len(keys) == 1 and all(k.startswith("stage/datasets/") for k in keys)
        body = boto3.client("s3").get_object(Bucket=bedrock.bucket, Key=keys[0])["Body"].read()
        first = json.loads(body.splitlines()[0])
        assert set(first) >= {"messages", "reference_answer"}
        # The grader is the compiled package, deployed.
        config = boto3.client("lambda").get_function_configuration(
            FunctionName="rlft-grader-arithmetic"
        )
        assert config["Handler"] == "rlft_grader_handler.lambda_handler"

        assert job.record.name is not None
        set_job_status(job.record.name, "Completed")
        await job.refresh()
        assert job.status is rlft.JobStatus.SUCCEEDED
        [checkpoint] = await job.checkpoints()
        assert checkpoint.model == job.fine_tuned_model


async def test_bad_hyperparameters_stop_before_any_upload(
    staged: None, bedrock: SimpleNamespace, tmp_path: Path
) -> None:
    example = _example()
    async with _client(bedrock, tmp_path) as client:
        with pytest.raises(HyperparameterError, match="batch_size"):
            await client.jobs.create(
                train=example.sums(),
                grader=example.GRADER,
                hyperparameters=rlft.Hyperparameters(batch_size=8),
            )
    assert boto3.client("s3").list_objects_v2(Bucket=bedrock.bucket).get("KeyCount") == 0
    assert boto3.client("lambda").list_functions()["Functions"] == []
