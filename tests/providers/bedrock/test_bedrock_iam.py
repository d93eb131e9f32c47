"""The pre-flight ``lambda:InvokeFunction`` check: IAM's evaluation rules, and what it reports."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from rlft.exceptions import ConfigurationError
from rlft_providers.bedrock._iam import check_invoke_permission, policy_decision

pytestmark = pytest.mark.anyio

FN = "arn:aws:lambda:us-east-1:123456789012:function:rlft-grader-label"
V3 = FN + ":3"


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(action: Any, resource: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("documents", "decision"),
    [
        ([_doc(_allow("lambda:InvokeFunction", [FN, FN + ":*"]))], "allow"),
        ([_doc(_allow("lambda:*", "*"))], "allow"),
        ([_doc(_allow("*", "*"))], "allow"),
        ([_doc(_allow("LAMBDA:invokefunction", V3))], "allow"),  # actions ignore case
        (
            [_doc(_allow("lambda:Invoke*", "arn:aws:lambda:*:*:function:rlft-grader-?????:*"))],
            "allow",
        ),
        # An unqualified function ARN does not cover a published version.
        ([_doc(_allow("lambda:InvokeFunction", FN))], "none"),
        ([_doc(_allow("lambda:InvokeFunction", FN.upper() + ":3"))], "none"),  # resources do not
        ([_doc(_allow("s3:GetObject", "*"))], "none"),
        ([_doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], "allow"),
        ([_doc({"Effect": "Allow", "NotAction": "lambda:*", "Resource": "*"})], "none"),
        ([_doc({"Effect": "Allow", "Action": "lambda:*", "NotResource": V3})], "none"),
        (
            [
                _doc(_allow("*", "*")),
                _doc({"Effect": "Deny", "Action": "lambda:*", "Resource": "*"}),
            ],
            "deny",
        ),
        ([{"Statement": _allow("lambda:InvokeFunction", "*")}], "allow"),  # one statement, no list
        ([], "none"),
    ],
)
def test_policy_decision(documents: list[dict[str, Any]], decision: str) -> None:
    assert policy_decision(documents, "lambda:InvokeFunction", V3) == decision


async def test_a_managed_policy_counts(provider: Any, bedrock: SimpleNamespace) -> None:
    iam = boto3.client("iam")
    iam.delete_role_policy(RoleName=bedrock.job_role, PolicyName="invoke")
    arn = iam.create_policy(
        PolicyName="invoke-graders", PolicyDocument=json.dumps(_doc(_allow("lambda:*", "*")))
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=bedrock.job_role, PolicyArn=arn)
    assert await check_invoke_permission(
        provider._aws, role_arn=bedrock.job_role_arn, function_arn=V3
    )


async def test_a_deny_is_named(provider: Any, bedrock: SimpleNamespace) -> None:
    boto3.client("iam").put_role_policy(
        RoleName=bedrock.job_role,
        PolicyName="deny",
        PolicyDocument=json.dumps(_doc({"Effect": "Deny", "Action": "lambda:*", "Resource": "*"})),
    )
    with pytest.raises(ConfigurationError, match="Remove or narrow that Deny"):
        await check_invoke_permission(provider._aws, role_arn=bedrock.job_role_arn, function_arn=V3)


async def test_unreadable_policies_go_ahead(
    provider: Any, bedrock: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.stub import Stubber

    with Stubber(provider._aws.client("iam")) as stubber:
        stubber.add_client_error(
            "list_role_policies", service_error_code="AccessDenied", http_status_code=403
        )
        allowed = await check_invoke_permission(
            provider._aws, role_arn=bedrock.job_role_arn, function_arn=V3
        )
    assert allowed is False
    assert "could not read the policies" in caplog.text
