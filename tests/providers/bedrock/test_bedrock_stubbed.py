"""Exact request shapes and error paths with botocore's Stubber, where moto drops or lacks things.

moto 5.2.5 silently drops ``customizationConfig`` and has no custom model deployments, so those
requests are pinned here with ``expected_params``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from rlft._models import Checkpoint, Hyperparameters, JobStatus
from rlft.exceptions import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    RateLimitError,
    ServerError,
)
from rlft_providers.bedrock import _rules
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:my-grader:4"
JOB_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/"
    "amazon.nova-2-lite-v1:0:256k/abcdefghij12"
)
MODEL_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-2-lite-v1:0:256k/qwertyuiop12"
)


@pytest.fixture
def stubbed(bedrock: SimpleNamespace) -> Iterator[tuple[BedrockProvider, Stubber]]:
    """A provider whose bedrock client answers only what the test queues (no moto, no AWS)."""
    settings = bedrock.make_settings(
        check_permissions=False,
        kms_key_id="alias/rlft",
        subnet_ids="subnet-a,subnet-b",
        security_group_ids=("sg-1",),
    )
    provider = BedrockProvider(settings=settings, session=boto3.Session())
    client = provider._aws.client("bedrock")
    with Stubber(client) as stubber:
        yield provider, stubber
        stubber.assert_no_pending_responses()


def _job(status: str = "InProgress", **extra: Any) -> dict[str, Any]:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    return {
        "jobArn": JOB_ARN,
        "jobName": "triage-0123456789ab",
        "outputModelName": "triage-model-0123456789ab",
        "roleArn": "arn:aws:iam::123456789012:role/rlft-bedrock-job",
        "status": status,
        "creationTime": now,
        "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0:256k",
        "trainingDataConfig": {"s3Uri": "s3://b/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://b/valid.jsonl"}]},
        "outputDataConfig": {"s3Uri": "s3://b/output/"},
        "customizationType": "REINFORCEMENT_FINE_TUNING",
        "customizationConfig": {
            "rftConfig": {"graderConfig": {"lambdaGrader": {"lambdaArn": LAMBDA}}}
        },
        **extra,
    }


async def test_the_create_request_is_exactly_rft(
    stubbed: tuple[BedrockProvider, Stubber], make_request: Any, bedrock: SimpleNamespace
) -> None:
    provider, stubber = stubbed
    request = make_request(
        {"lambda_arn": LAMBDA},
        key="exact",
        hyperparameters=Hyperparameters(
            epochs=2,
            batch_size=32,
            learning_rate=5e-5,
            samples_per_prompt=4,
            max_completion_tokens=750,
            eval_interval=10,
            reasoning_effort="high",
            provider_options={"maxPromptLength": 4000},
        ),
        labels={"team": "support"},
    )
    request = type(request)(
        spec=request.spec,
        grader_payload=request.grader_payload,
        training_file=request.training_file,
        validation_file="s3://rlft-test-staging/stage/datasets/valid.jsonl",
        idempotency_key=request.idempotency_key,
    )
    job_name, model_name = _rules.job_names("triage", "exact")
    stubber.add_response(
        "create_model_customization_job",
        {"jobArn": JOB_ARN},
        expected_params={
            "jobName": job_name,
            "customModelName": model_name,
            "roleArn": bedrock.job_role_arn,
            "clientRequestToken": _rules.client_token("exact"),
            "baseModelIdentifier": "amazon.nova-2-lite-v1:0:256k",
            "customizationType": "REINFORCEMENT_FINE_TUNING",
            "trainingDataConfig": {"s3Uri": f"s3://{bedrock.bucket}/stage/datasets/train.jsonl"},
            "validationDataConfig": {
                "validators": [{"s3Uri": f"s3://{bedrock.bucket}/stage/datasets/valid.jsonl"}]
            },
            "outputDataConfig": {"s3Uri": f"s3://{bedrock.bucket}/stage/output/"},
            "customizationConfig": {
                "rftConfig": {
                    "graderConfig": {"lambdaGrader": {"lambdaArn": LAMBDA}},
                    "hyperParameters": {
                        "epochCount": 2,
                        "batchSize": 32,
                        "learningRate": 5e-5,
                        "trainingSamplePerPrompt": 4,
                        "inferenceMaxTokens": 750,
                        "evalInterval": 10,
                        "reasoningEffort": "high",
                        "maxPromptLength": 4000,
                    },
                }
            },
            "customModelKmsKeyId": "alias/rlft",
            "vpcConfig": {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-1"]},
            "jobTags": [{"key": "team", "value": "support"}],
        },
    )
    record = await provider.create_job(request)
    assert record.id == JOB_ARN
    assert record.status is JobStatus.RUNNING
    # Never the SFT string map: RFT settings live only in customizationConfig.
    assert "hyperParameters" not in record.raw["request"]  # type: ignore[index,operator]


async def test_get_job_reads_the_real_shape(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    end = dt.datetime(2026, 1, 2, 9, 0, tzinfo=dt.UTC)
    stubber.add_response(
        "get_model_customization_job",
        _job(
            "Completed",
            outputModelArn=MODEL_ARN,
            endTime=end,
            trainingMetrics={"trainingLoss": 0.125},
            clientRequestToken="rlft-abc",
            statusDetails={
                "validationDetails": {"status": "Completed"},
                "dataProcessingDetails": {"status": "Completed"},
                "trainingDetails": {"status": "Completed"},
            },
        ),
        expected_params={"jobIdentifier": JOB_ARN},
    )
    record = await provider.get_job(JOB_ARN)
    assert (record.status, record.fine_tuned_model, record.finished_at) == (
        JobStatus.SUCCEEDED,
        MODEL_ARN,
        end,
    )
    assert record.metadata["lambda_arn"] == LAMBDA  # real Bedrock echoes customizationConfig
    assert record.metadata["job_name"] == "triage-0123456789ab"
    assert record.raw is not None and record.raw["creationTime"] == "2026-01-02T03:04:05+00:00"


async def test_events_follow_the_status_details_phases(
    stubbed: tuple[BedrockProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    stubber.add_response(
        "get_model_customization_job",
        _job(
            statusDetails={
                "validationDetails": {"status": "Completed"},
                "dataProcessingDetails": {"status": "InProgress"},
                "trainingDetails": {"status": "NotStarted"},
            }
        ),
    )
    events = await provider.list_events(JOB_ARN)
    assert [e.id for e in events] == [
        "0:created",
        "5:status:InProgress",
        "13:validation:Completed",
        "21:data-processing:InProgress",
    ]


async def test_deploy_creates_an_on_demand_deployment(
    stubbed: tuple[BedrockProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    checkpoint = Checkpoint(
        id=MODEL_ARN,
        job_id=JOB_ARN,
        model=MODEL_ARN,
        raw={"outputModelArn": MODEL_ARN, "outputModelName": "triage-model-0123456789ab"},
    )
    deployment = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdefghij12"
    name = _rules.deployment_name(None, MODEL_ARN, hint="triage-model-0123456789ab")
    stubber.add_response(
        "create_custom_model_deployment",
        {"customModelDeploymentArn": deployment},
        expected_params={
            "modelDeploymentName": name,
            "modelArn": MODEL_ARN,
            "description": f"rlft: {JOB_ARN}",
            "clientRequestToken": _rules.client_token(f"deploy:{MODEL_ARN}:{name}"),
        },
    )
    assert await provider.deploy_checkpoint(checkpoint) == deployment
    assert name.startswith("triage-model-0123456789ab-")

    stubber.add_response(
        "create_custom_model_deployment",
        {"customModelDeploymentArn": deployment},
        expected_params={
            "modelDeploymentName": "prod-triage",
            "modelArn": MODEL_ARN,
            "description": f"rlft: {JOB_ARN}",
            "clientRequestToken": _rules.client_token(f"deploy:{MODEL_ARN}:prod-triage"),
        },
    )
    assert await provider.deploy_checkpoint(checkpoint, name="prod-triage") == deployment


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDeniedException", 403, PermissionDeniedError),
        ("ValidationException", 400, BadRequestError),
        ("ThrottlingException", 429, RateLimitError),
        ("ResourceNotFoundException", 404, NotFoundError),
        ("ServiceQuotaExceededException", 400, RateLimitError),
        ("InternalServerException", 500, ServerError),
        ("SomethingNew", 418, BadRequestError),  # unknown codes fall back to the status
        ("SomethingNewer", 503, ServerError),
    ],
)
async def test_errors_map_to_rlft_exceptions(
    stubbed: tuple[BedrockProvider, Stubber],
    code: str,
    status: int,
    expected: type[ProviderAPIError],
) -> None:
    provider, stubber = stubbed
    stubber.add_client_error(
        "get_model_customization_job",
        service_error_code=code,
        service_message=f"{code} happened",
        http_status_code=status,
    )
    with pytest.raises(expected) as caught:
        await provider.get_job(JOB_ARN)
    error = caught.value
    assert type(error) is expected
    assert (error.provider, error.code, error.status_code) == ("bedrock", code, status)
    assert f"{code} happened" in str(error)
    assert isinstance(error.__cause__, ClientError)  # chained, never lost


async def test_stopping_a_finished_job_returns_it(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_client_error(
        "stop_model_customization_job",
        service_error_code="ConflictException",
        service_message="Job is already in a terminal state",
        http_status_code=409,
        expected_params={"jobIdentifier": JOB_ARN},
    )
    stubber.add_response("get_model_customization_job", _job("Completed", outputModelArn=MODEL_ARN))
    record = await provider.cancel_job(JOB_ARN)
    assert record.status is JobStatus.SUCCEEDED


async def test_other_stop_errors_raise(stubbed: tuple[BedrockProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_client_error(
        "stop_model_customization_job",
        service_error_code="ValidationException",
        service_message="bad identifier",
        http_status_code=400,
    )
    with pytest.raises(BadRequestError, match="bad identifier"):
        await provider.cancel_job("bad")
