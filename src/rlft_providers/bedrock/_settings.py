"""Settings of the ``bedrock`` provider: ``[bedrock]`` in ``rlft.toml``, ``RLFT_BEDROCK_*`` env.

Imports nothing heavy: the plugin module loads this to register the provider.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rlft.provider import ProviderSettings

__all__ = ["AwsSettings", "BedrockOpenWeightSettings", "BedrockSettings"]

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+$")


def _split(value: Any) -> Any:
    # RLFT_BEDROCK_SUBNET_IDS="subnet-a,subnet-b" arrives as one string.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _role_arn(value: str | None) -> str | None:
    if value is not None and not _ROLE_ARN.match(value):
        raise ValueError(
            f"{value!r} is not an IAM role ARN; write arn:aws:iam::<account>:role/<name>"
        )
    return value


class AwsSettings(ProviderSettings):
    """What both Bedrock providers share: the AWS session and the grader Lambda rlft deploys.
    Credentials are never settings: they come from the AWS chain (env vars, ``~/.aws``, SSO,
    an instance or task role)."""

    region: str | None = None
    """AWS region; ``None`` uses the AWS chain (``AWS_REGION``, the profile). Nova RFT runs in
    us-east-1."""
    profile: str | None = None
    """A named profile from ``~/.aws/config``; ``None`` uses the default chain."""
    lambda_role_arn: str | None = None
    """The grader Lambda's execution role. ``None``: rlft creates (or reuses) ``lambda_role_name``
    with basic logging and ``bedrock:InvokeModel`` for judge-model graders."""
    lambda_role_name: str = "rlft-grader-lambda"
    """The execution role rlft creates when ``lambda_role_arn`` is not set."""
    lambda_layers: tuple[str, ...] = ()
    """Layer ARNs for the grader Lambda: they must provide the packages the compiled grader lists
    in ``requirements`` (rapidfuzz, nltk, rouge-score for text similarity; a python grader's
    imports), built for Lambda's Linux platform."""
    lambda_function_prefix: str = "rlft-grader"
    """Grader functions are named ``<prefix>-<grader name>``; each job pins a published version."""
    lambda_memory_mb: int = Field(default=512, ge=128, le=10240)
    """Grader Lambda memory (128-10240 MB; AWS samples use 512)."""
    lambda_timeout_s: int = Field(default=300, ge=1, le=900)
    """Grader Lambda timeout; Lambda's maximum, and Bedrock's limit for a reward function, is 900 s.
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html"""
    iam_propagation_timeout_s: float = Field(default=60.0, ge=0)
    """How long to wait for a newly created execution role to become assumable by Lambda."""
    max_concurrency: int = Field(default=8, ge=1, le=64)
    """Concurrent AWS calls from this provider (its own thread limiter)."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """botocore's total attempts per call (standard retry mode); nothing above retries."""
    allow_unknown_models: bool = False
    """Accept base model ids rlft does not know support RFT (for models AWS adds later)."""

    @field_validator("lambda_layers", mode="before")
    @classmethod
    def _split_layers(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("lambda_role_arn")
    @classmethod
    def _check_lambda_role(cls, value: str | None) -> str | None:
        return _role_arn(value)


class BedrockSettings(AwsSettings):
    """How rlft reaches Bedrock's native (Nova) reinforcement fine-tuning.

    Example ``rlft.toml``::

        [bedrock]
        region = "us-east-1"
        role_arn = "arn:aws:iam::123456789012:role/rlft-bedrock-rft"
        s3_uri = "s3://my-bucket/rlft"
    """

    role_arn: str | None = None
    """The job's service role (trusts ``bedrock.amazonaws.com``; reads the data, writes the output,
    invokes the grader Lambda). Required for Nova jobs."""
    s3_uri: str | None = None
    """Staging prefix (``s3://bucket/prefix``): datasets go under ``datasets/``, job output under
    ``output/``. Required for Nova jobs."""
    output_s3_uri: str | None = None
    """Where Bedrock writes job output; defaults to ``<s3_uri>/output/``."""
    kms_key_id: str | None = None
    """KMS key for the custom model (``customModelKmsKeyId``) and for the staged S3 objects."""
    subnet_ids: tuple[str, ...] = ()
    """VPC subnets for the job (1-16); set together with ``security_group_ids``."""
    security_group_ids: tuple[str, ...] = ()
    """VPC security groups for the job (1-5)."""
    check_permissions: bool = True
    """Before creating a job, read the job role's policies and refuse if it cannot invoke the
    grader Lambda (naming the missing statement)."""
    inference_model: str | None = None
    """The model id or inference profile ``rlft preflight`` samples through Converse; ``None``
    derives it from the job's base model (``amazon.nova-2-lite-v1:0:256k`` is sampled as
    ``<inference_scope>.amazon.nova-2-lite-v1:0``). Set it to a deployment ARN to sample a
    custom model."""
    inference_scope: Literal["us", "global"] = "us"
    """The cross-region inference profile preflight uses for Nova: ``us`` (US regions) or
    ``global`` (any commercial region)."""

    @field_validator("subnet_ids", "security_group_ids", mode="before")
    @classmethod
    def _split_env_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("s3_uri", "output_s3_uri")
    @classmethod
    def _check_s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError(f"{value!r} is not an S3 URI; write s3://bucket/prefix")
        return value.rstrip("/") if value else value

    @field_validator("role_arn")
    @classmethod
    def _check_role_arn(cls, value: str | None) -> str | None:
        return _role_arn(value)

    @model_validator(mode="after")
    def _check_vpc(self) -> BedrockSettings:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("set both subnet_ids and security_group_ids for a VPC, or neither")
        if len(self.subnet_ids) > 16 or len(self.security_group_ids) > 5:
            raise ValueError("a job VPC takes 1-16 subnet_ids and 1-5 security_group_ids")
        return self

    def vpc_config(self) -> dict[str, list[str]] | None:
        """The job's ``vpcConfig``, or ``None`` without one."""
        if not self.subnet_ids:
            return None
        return {
            "subnetIds": list(self.subnet_ids),
            "securityGroupIds": list(self.security_group_ids),
        }

    def staging(self) -> tuple[str, str]:
        """``(bucket, prefix)`` of ``s3_uri``; the prefix has no trailing slash (may be empty)."""
        match = _S3_URI.match(self.s3_uri or "")
        if match is None:
            raise ValueError("s3_uri is not set")
        return match["bucket"], (match["prefix"] or "").strip("/")

    def output_uri(self) -> str:
        """Where job output goes: ``output_s3_uri``, else ``<s3_uri>/output/``."""
        if self.output_s3_uri:
            return self.output_s3_uri + "/"
        return f"{self.s3_uri}/output/"


class BedrockOpenWeightSettings(AwsSettings):
    """How rlft reaches Bedrock's OpenAI-compatible fine-tuning endpoint (gpt-oss, Qwen3):
    ``[bedrock-open-weight]`` in ``rlft.toml``, ``RLFT_BEDROCK_OPEN_WEIGHT_*`` in the environment.

    Example ``rlft.toml``::

        [bedrock-open-weight]
        region = "us-west-2"
    """

    openai_base_url: str | None = None
    """The OpenAI-compatible endpoint; defaults to ``https://bedrock-mantle.<region>.api.aws/v1``."""
    file_poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between checks that an uploaded file is processed."""
    file_processing_timeout: float = Field(default=1800.0, gt=0)
    """How long to wait for an uploaded file to be processed."""


# "bedrock-open-weight" is no environment-variable name: spell the prefix with underscores.
BedrockOpenWeightSettings.env_fields = {
    name: f"RLFT_BEDROCK_OPEN_WEIGHT_{name.upper()}"
    for name in BedrockOpenWeightSettings.model_fields
}
