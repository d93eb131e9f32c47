"""The job lifecycle against moto: grader deploy, IAM check, create, get, list, stop, events."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from rlft._models import JobStatus
from rlft.exceptions import CapabilityError, ConfigurationError, NotFoundError, UsageError
from rlft_providers.bedrock import _rules
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio


def _moto_job(name: str) -> dict[str, Any]:
    return boto3.client("bedrock").get_model_customization_job(jobIdentifier=name)


async def test_create_deploys_the_grader_and_starts_an_rft_job(
    provider: BedrockProvider, make_request: Any, bedrock: SimpleNamespace
) -> None:
    record = await provider.create_job(make_request(key="k1"))

    job_name, _ = _rules.job_names("triage", "k1")
    prefix = f"arn:aws:bedrock:us-east-1:{bedrock.account}:model-customization-job/"
    assert record.id.startswith(prefix + "amazon.nova-2-lite-v1:0:256k/")  # the service's form
    assert (record.status, record.provider_status, record.name) == (
        JobStatus.RUNNING,
        "InProgress",
        job_name,
    )
    # The grader became a Lambda, published, and the job pins that version.
    function = boto3.client("lambda").get_function(FunctionName="rlft-grader-label")
    config = function["Configuration"]
    assert (config["Runtime"], config["Handler"], config["Timeout"], config["MemorySize"]) == (
        "python3.12",
        "handler.handler",
        300,
        512,
    )
    assert record.metadata["lambda_arn"] == config["FunctionArn"] + ":1"
    # The execution role rlft created trusts Lambda and may write logs.
    iam = boto3.client("iam")
    role = iam.get_role(RoleName="rlft-grader-lambda")["Role"]
    assert config["Role"] == role["Arn"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert iam.list_role_policies(RoleName="rlft-grader-lambda")["PolicyNames"] == [
        "rlft-grader-logs"
    ]
    # What moto kept of the request (it drops customizationConfig: see the Stubber tests).
    stored = _moto_job(job_name)
    assert stored["customizationType"] == "REINFORCEMENT_FINE_TUNING"
    assert stored["clientRequestToken"] == _rules.client_token("k1")
    assert stored["roleArn"] == bedrock.job_role_arn
    assert stored["outputDataConfig"] == {"s3Uri": f"s3://{bedrock.bucket}/stage/output/"}
    # get by the ARN (what rlft stores) finds the same job.
    fetched = await provider.get_job(record.id)
    assert (fetched.id, fetched.status) == (record.id, JobStatus.RUNNING)
    assert fetched.metadata["client_request_token"] == _rules.client_token("k1")


async def test_a_retried_create_returns_the_first_job(
    provider: BedrockProvider, make_request: Any
) -> None:
    first = await provider.create_job(make_request(key="same"))
    second = await provider.create_job(make_request(key="same"))
    assert second.id == first.id
    assert len(await provider.list_jobs()) == 1
    versions = boto3.client("lambda").list_versions_by_function(FunctionName="rlft-grader-label")
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]


async def test_a_name_taken_by_another_request_is_refused(
    provider: BedrockProvider, make_request: Any, set_job_status: Any
) -> None:
    first = await provider.create_job(make_request(key="k"))
    # Someone else's job under our deterministic name: rlft must not adopt it.
    set_job_status(first.name, "InProgress", client_request_token="someone-else")
    with pytest.raises(UsageError, match="created from another request"):
        await provider.create_job(make_request(key="k"))


async def test_a_changed_grader_updates_the_function_and_pins_a_new_version(
    provider: BedrockProvider, make_request: Any, bedrock: SimpleNamespace
) -> None:
    first = await provider.create_job(make_request(key="a"))
    changed = bedrock.FakePackage(bedrock.tiny_zip("def handler(e, c):\n    return [1]\n"))
    second = await provider.create_job(make_request(changed, key="b"))
    assert first.metadata["lambda_arn"].endswith(":1")
    assert second.metadata["lambda_arn"].endswith(":2")
    code = boto3.client("lambda").get_function(FunctionName="rlft-grader-label:2")
    assert code["Configuration"]["Version"] == "2"


async def test_a_model_grader_gets_invoke_model_on_its_execution_role(
    provider: BedrockProvider, make_request: Any
) -> None:
    from rlft.graders import ScoreModel

    judge = ScoreModel(
        name="judge",
        model="amazon.nova-pro-v1:0",
        input=[{"role": "user", "content": "Score {{ sample.output_text }}"}],
    )
    await provider.create_job(make_request(grader=judge))
    policy = boto3.client("iam").get_role_policy(
        RoleName="rlft-grader-lambda", PolicyName="rlft-judge-models"
    )["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    assert policy["Statement"][0]["Action"] == ["bedrock:InvokeModel"]


async def test_a_named_execution_role_is_used_as_is(
    staged: None, make_request: Any, bedrock: SimpleNamespace
) -> None:
    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName="my-lambda-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    provider = BedrockProvider(
        settings=bedrock.make_settings(lambda_role_arn=role, lambda_memory_mb=1024),
        session=boto3.Session(),
    )
    await provider.create_job(make_request())
    config = boto3.client("lambda").get_function_configuration(FunctionName="rlft-grader-label")
    assert (config["Role"], config["MemorySize"]) == (role, 1024)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="rlft-grader-lambda")


async def test_a_native_grader_arn_skips_deployment(
    provider: BedrockProvider, make_request: Any, bedrock: SimpleNamespace
) -> None:
    arn = f"arn:aws:lambda:us-east-1:{bedrock.account}:function:rlft-grader-mine:3"
    record = await provider.create_job(make_request({"lambda_arn": arn}))
    assert record.metadata["lambda_arn"] == arn
    assert boto3.client("lambda").list_functions()["Functions"] == []


async def test_a_job_role_without_invoke_is_refused_naming_the_statement(
    staged: None, make_request: Any, bedrock: SimpleNamespace
) -> None:
    iam = boto3.client("iam")
    iam.delete_role_policy(RoleName=bedrock.job_role, PolicyName="invoke")
    iam.put_role_policy(
        RoleName=bedrock.job_role,
        PolicyName="s3-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(ConfigurationError) as caught:
        await provider.create_job(make_request())
    message = str(caught.value)
    function = f"arn:aws:lambda:us-east-1:{bedrock.account}:function:rlft-grader-label"
    assert bedrock.job_role_arn in message
    assert "lambda:InvokeFunction" in message
    assert f'"{function}"' in message and f'"{function}:*"' in message
    assert f"--role-name {bedrock.job_role}" in message
    assert (
        boto3.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"]
        == []
    )  # refused before any job started


async def test_an_unknown_job_role_is_named(
    staged: None, make_request: Any, bedrock: SimpleNamespace
) -> None:
    ghost = f"arn:aws:iam::{bedrock.account}:role/ghost"
    provider = BedrockProvider(
        settings=bedrock.make_settings(role_arn=ghost), session=boto3.Session()
    )
    with pytest.raises(ConfigurationError, match="ghost does not exist"):
        await provider.create_job(make_request())


async def test_list_get_stop_and_statuses(
    provider: BedrockProvider, make_request: Any, set_job_status: Any
) -> None:
    done = await provider.create_job(make_request(key="one", name="first"))
    running = await provider.create_job(make_request(key="two", name="second"))
    set_job_status(done.name, "Completed")
    listed = {record.id: record for record in await provider.list_jobs()}
    assert listed[done.id].status is JobStatus.SUCCEEDED
    assert listed[done.id].fine_tuned_model  # the custom model, once completed
    assert listed[running.id].status is JobStatus.RUNNING
    assert len(await provider.list_jobs(limit=1)) == 1

    stopped = await provider.cancel_job(running.id)
    assert (stopped.status, stopped.provider_status) == (JobStatus.CANCELLED, "Stopped")
    assert stopped.finished_at is not None
    again = await provider.cancel_job(running.id)  # stopping a stopped job is not an error
    assert again.status is JobStatus.CANCELLED


async def test_failed_job_carries_the_reason(
    provider: BedrockProvider, make_request: Any, set_job_status: Any
) -> None:
    record = await provider.create_job(make_request())
    set_job_status(record.name, "Failed", failure_message="Lambda grader timed out")
    failed = await provider.get_job(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.message == "Lambda grader timed out"
    events = await provider.list_events(record.id)
    assert events[-1].level == "error" and events[-1].message == "Lambda grader timed out"


async def test_events_are_synthesised_with_resumable_cursors(
    provider: BedrockProvider, make_request: Any, set_job_status: Any
) -> None:
    record = await provider.create_job(make_request())
    first = await provider.list_events(record.id)
    assert [(e.kind, e.id) for e in first] == [
        ("message", "0:created"),
        ("status", "5:status:InProgress"),
    ]
    assert await provider.list_events(record.id, after=first[-1].id) == []

    set_job_status(
        record.name,
        "Completed",
        training_metrics={"trainingLoss": 0.25},
        validation_metrics=[{"validationLoss": 0.5}],
    )
    later = await provider.list_events(record.id, after=first[-1].id)
    assert [e.id for e in later] == ["60:status:Completed", "70:metrics:final"]
    metrics = later[-1].metrics
    assert metrics is not None
    assert metrics.extra == {"training_loss": 0.25, "validation_loss": 0.5}
    assert later[0].message == "status Completed (succeeded)"


async def test_the_output_model_is_the_checkpoint(
    provider: BedrockProvider, make_request: Any, set_job_status: Any
) -> None:
    record = await provider.create_job(make_request())
    assert await provider.list_checkpoints(record.id) == []
    set_job_status(record.name, "Completed")
    [checkpoint] = await provider.list_checkpoints(record.id)
    job = await provider.get_job(record.id)
    assert checkpoint.model == job.fine_tuned_model
    assert checkpoint.model.startswith("arn:aws:bedrock:us-east-1:")
    assert checkpoint.job_id == record.id


async def test_pause_and_resume_say_why_not(provider: BedrockProvider) -> None:
    for call in (provider.pause_job, provider.resume_job):
        with pytest.raises(CapabilityError, match="can only be stopped") as caught:
            await call("any")
        assert caught.value.provider == "bedrock"


async def test_unknown_job_is_not_found(provider: BedrockProvider) -> None:
    with pytest.raises(NotFoundError) as caught:
        await provider.get_job("no-such-job")
    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.__cause__ is not None


async def test_aclose_is_idempotent_and_clients_come_back(provider: BedrockProvider) -> None:
    assert await provider.list_jobs() == []
    await provider.aclose()
    await provider.aclose()
    assert await provider.list_jobs() == []  # a closed provider rebuilds its clients on use
