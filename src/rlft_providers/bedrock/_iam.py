"""IAM for the grader: the Lambda's execution role, and a check that the job role may invoke it.

Bedrock invokes the grader with the *job's* service role, through an identity policy on that role
(https://docs.aws.amazon.com/bedrock/latest/userguide/rft-access-security.html). A missing
``lambda:InvokeFunction`` only shows up after the job has started, so we read the role's policies
first and name the exact statement to add. The check reads policies rather than calling
``SimulatePrincipalPolicy``: reading needs only ``iam:Get*``/``iam:List*`` on the role, and it is
what moto can serve in tests. Conditions and permission boundaries are not evaluated; when the
answer is unsure we let the job go ahead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import unquote

from rlft.exceptions import ConfigurationError, NotFoundError, PermissionDeniedError
from rlft_providers.bedrock._aws import Aws

__all__ = [
    "check_invoke_permission",
    "ensure_execution_role",
    "invoke_statement",
    "policy_decision",
]

log = logging.getLogger("rlft.bedrock")

_LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# What AWSLambdaBasicExecutionRole grants, inline so the role rlft makes is wholly described here.
_LOGS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}

# Judge-model graders call Converse, which is authorised as bedrock:InvokeModel.
# https://docs.aws.amazon.com/bedrock/latest/userguide/conversation-inference-call.html
_JUDGE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel"],
            "Resource": [
                "arn:aws:bedrock:*::foundation-model/*",
                "arn:aws:bedrock:*:*:inference-profile/*",
            ],
        }
    ],
}


async def ensure_execution_role(aws: Aws, name: str, *, judge: bool) -> tuple[str, bool]:
    """Return ``(arn, created)`` of the grader's execution role, creating it if missing.

    The role trusts ``lambda.amazonaws.com``, may write its logs (what
    ``AWSLambdaBasicExecutionRole`` grants) and, for judge-model graders, may call
    ``bedrock:InvokeModel``.
    """
    created = False
    try:
        role = await aws.call("iam", "get_role", RoleName=name)
    except NotFoundError:
        role = await aws.call(
            "iam",
            "create_role",
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST),
            Description="rlft grader Lambda execution role",
            Tags=[{"Key": "rlft", "Value": "grader"}],
        )
        created = True
    arn = str(role["Role"]["Arn"])
    if created:
        await aws.call(
            "iam",
            "put_role_policy",
            RoleName=name,
            PolicyName="rlft-grader-logs",
            PolicyDocument=json.dumps(_LOGS_POLICY),
        )
    if judge:  # put_role_policy replaces by name: safe to repeat
        await aws.call(
            "iam",
            "put_role_policy",
            RoleName=name,
            PolicyName="rlft-judge-models",
            PolicyDocument=json.dumps(_JUDGE_POLICY),
        )
    return arn, created


# --- the job role's lambda:InvokeFunction --------------------------------------------------------

Decision = Literal["allow", "deny", "none"]


def _wildcard(pattern: str, *, case: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run, ? one character; everything else literal.
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{regex}$", 0 if case else re.IGNORECASE)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _matches(patterns: Iterable[str], value: str, *, case: bool) -> bool:
    return any(_wildcard(p, case=case).match(value) for p in patterns)


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _matches(_as_list(statement["Action"]), action, case=False)
    else:
        action_ok = not _matches(_as_list(statement.get("NotAction")), action, case=False)
    if "Resource" in statement:
        resource_ok = _matches(_as_list(statement["Resource"]), resource, case=True)
    else:
        resource_ok = not _matches(_as_list(statement.get("NotResource")), resource, case=True)
    return action_ok and resource_ok


def policy_decision(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> Decision:
    """Evaluate identity policies for one action on one resource, IAM's way round.

    An explicit ``Deny`` wins over any ``Allow``; no matching ``Allow`` is an implicit deny
    (``"none"``). Conditions count as met: this is a pre-flight check, not an authoriser.
    """
    allowed = False
    for document in documents:
        statements = document.get("Statement", [])
        if isinstance(statements, Mapping):
            statements = [statements]
        for statement in statements:
            if not _statement_applies(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                return "deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else "none"


def invoke_statement(function_arn: str) -> dict[str, Any]:
    """The statement the job role needs: the function and its versions (the job pins one).

    An identity policy on ``function:name`` does not cover ``function:name:3``, hence both.
    """
    unqualified = re.sub(r"(:function:[^:]+):.+$", r"\1", function_arn)
    return {
        "Sid": "RlftInvokeGrader",
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": [unqualified, f"{unqualified}:*"],
    }


def _document(value: Any) -> dict[str, Any]:
    # boto3 decodes IAM's URL-encoded JSON to a dict; some paths hand back the string.
    if isinstance(value, str):
        parsed: dict[str, Any] = json.loads(unquote(value))
        return parsed
    return dict(value)


async def _role_documents(aws: Aws, role_name: str) -> list[dict[str, Any]]:
    documents = []
    for policy_name in await aws.paginate(
        "iam", "list_role_policies", "PolicyNames", limit=1000, RoleName=role_name
    ):
        inline = await aws.call(
            "iam", "get_role_policy", RoleName=role_name, PolicyName=policy_name
        )
        documents.append(_document(inline["PolicyDocument"]))
    for attached in await aws.paginate(
        "iam", "list_attached_role_policies", "AttachedPolicies", limit=1000, RoleName=role_name
    ):
        policy = await aws.call("iam", "get_policy", PolicyArn=attached["PolicyArn"])
        version = await aws.call(
            "iam",
            "get_policy_version",
            PolicyArn=attached["PolicyArn"],
            VersionId=policy["Policy"]["DefaultVersionId"],
        )
        documents.append(_document(version["PolicyVersion"]["Document"]))
    return documents


async def check_invoke_permission(aws: Aws, *, role_arn: str, function_arn: str) -> bool:
    """Refuse a job whose role cannot invoke the grader, naming the statement to add.

    Returns:
        ``True`` if the policies allow it, ``False`` if they could not be read (we go ahead).

    Raises:
        ConfigurationError: The role's policies deny or do not grant ``lambda:InvokeFunction``.
    """
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        documents = await _role_documents(aws, role_name)
    except PermissionDeniedError as exc:
        log.warning(
            "could not read the policies of %s to check lambda:InvokeFunction (%s); going ahead",
            role_arn,
            exc.code,
        )
        return False
    except NotFoundError as exc:
        raise ConfigurationError(
            f"[bedrock] role_arn {role_arn} does not exist in this account; create the job role "
            "(trusting bedrock.amazonaws.com) or fix role_arn"
        ) from exc
    decision = policy_decision(documents, "lambda:InvokeFunction", function_arn)
    if decision == "allow":
        return True
    statement = json.dumps(invoke_statement(function_arn), indent=2)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [invoke_statement(function_arn)]})
    if decision == "deny":
        fix = (
            "a Deny statement in its policies blocks lambda:InvokeFunction on it. Remove or "
            f"narrow that Deny, and make sure the role has this statement:\n{statement}"
        )
    else:
        fix = (
            "no statement in its policies allows lambda:InvokeFunction on it. Add this "
            f"statement to the role:\n{statement}\nfor example:\n  aws iam put-role-policy "
            f"--role-name {role_name} --policy-name rlft-invoke-grader --policy-document "
            f"'{policy}'"
        )
    raise ConfigurationError(
        f"the job role {role_arn} cannot invoke the grader Lambda {function_arn}, so Bedrock "
        f"could not grade a single sample: {fix}\n(or set [bedrock] check_permissions = false "
        "if the role is granted another way)"
    )
