"""Fixtures for the Bedrock provider: fake AWS credentials, moto, a staged bucket and roles.

Nothing here reaches AWS: credentials are fake, every client is created inside ``mock_aws`` or
wrapped in a botocore ``Stubber``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.session
import pytest
from botocore.model import ServiceModel
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.bedrock.models import BedrockBackend, ModelCustomizationJob

from rlft_providers.bedrock._aws import Aws
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._settings import BedrockSettings
from rlft_providers.bedrock._shapes import violations

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "rlft-test-staging"
JOB_ROLE = "rlft-bedrock-job"
JOB_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{JOB_ROLE}"

BEDROCK_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
INVOKE_ANY_GRADER = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rlft-grader-*",
        }
    ],
}


# --- every request rlft sends, checked against the vendored botocore models ---------------------

UPSTREAM = Path(__file__).parent / "upstream"
SENT: list[tuple[str, str, dict[str, Any]]] = []
"""(service, operation, params) of every call rlft's providers made in the current test."""


@functools.cache
def vendored_model(service: str) -> ServiceModel:
    """The pruned botocore model vendored under ``upstream/`` (scripts/refresh_upstream.py)."""
    data = json.loads((UPSTREAM / f"botocore_{service}.json").read_text())
    return ServiceModel({k: data[k] for k in ("metadata", "operations", "shapes")}, service)


@functools.cache
def installed_model(service: str) -> ServiceModel:
    """The installed botocore's own model of ``service``."""
    return botocore.session.get_session().get_service_model(service)


def check_sent(sent: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """What the service models refuse in ``sent``: botocore's own ``ParamValidator`` (types,
    required members, minimums), then the patterns, lengths, ranges and enums it skips; against
    the vendored model and the installed botocore's."""
    problems = []
    for service, operation, params in sent:
        if not (UPSTREAM / f"botocore_{service}.json").is_file():
            problems.append(
                f"{service}.{operation}: no vendored model for {service}; add it to "
                "BEDROCK_OPERATIONS in scripts/refresh_upstream.py and run it"
            )
            continue
        for origin, model in (
            ("vendored", vendored_model(service)),
            ("installed", installed_model(service)),
        ):
            if operation not in model.operation_names:
                problems.append(
                    f"{service}.{operation}: not in the {origin} model's operations; add it to "
                    "BEDROCK_OPERATIONS in scripts/refresh_upstream.py and run it"
                )
                continue
            shape = model.operation_model(operation).input_shape
            report = ParamValidator().validate(params, shape)
            if report.has_errors():
                problems.append(f"{service}.{operation} ({origin}): {report.generate_report()}")
            problems += [
                f"{service}.{operation} ({origin}): {v.describe()}"
                for v in violations(shape, params)
            ]
    return problems


def _record(params: dict[str, Any], model: Any, **_: Any) -> None:
    SENT.append((model.service_model.service_name, model.name, copy.deepcopy(params)))


@pytest.fixture(autouse=True)
def every_request_fits_the_botocore_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Record every call rlft's providers make through boto3 (moto and Stubber tests alike) and
    fail the test if the vendored service model refuses one."""
    original = Aws.client

    def client(self: Aws, service: str) -> Any:
        made = original(self, service)
        made.meta.events.register("provide-client-params", _record, unique_id="rlft-test-record")
        return made

    monkeypatch.setattr(Aws, "client", client)
    SENT.clear()
    yield
    problems = check_sent(SENT)
    assert not problems, "requests the botocore model refuses:\n" + "\n".join(problems)


@pytest.fixture
def botocore_model() -> SimpleNamespace:
    """The request recorder and the vendored models, for tests (they can't import conftest)."""
    return SimpleNamespace(
        sent=SENT, upstream=UPSTREAM, check_sent=check_sent, vendored=vendored_model
    )


def make_settings(**overrides: Any) -> BedrockSettings:
    values: dict[str, Any] = {
        "region": REGION,
        "role_arn": JOB_ROLE_ARN,
        "s3_uri": f"s3://{BUCKET}/stage",
    }
    values.update(overrides)
    return BedrockSettings(**values)


@dataclass(frozen=True)
class FakePackage:
    """Stands in for a compiled Lambda package where the handler's contents don't matter."""

    zip_bytes: bytes
    handler: str = "handler.handler"
    runtime: str = "python3.12"


def tiny_zip(body: str = "def handler(event, context):\n    return []\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed timestamp: same source, same bytes, same CodeSha256 (like real packages).
        archive.writestr(zipfile.ZipInfo("handler.py", date_time=(1980, 1, 1, 0, 0, 0)), body)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any) -> None:
    """Fake credentials and region from the environment; no real AWS config is read."""
    empty = tmp_path_factory.mktemp("aws")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


def _by_arn(original: Any) -> Any:
    # moto 5.2.5 does not URL-decode the job identifier, so the real API's "ARN or name" fails
    # for ARNs (reference/bedrock.md §9). Resolve ARNs to names the way the service does.
    def lookup(self: BedrockBackend, job_identifier: str) -> Any:
        identifier = unquote(job_identifier)
        for name, job in self.model_customization_jobs.items():
            if identifier in (name, job.job_arn):
                return original(self, name)
        return original(self, identifier)

    return lookup


def _real_arn(original: Any) -> Any:
    # moto names jobs .../model-customization-job/<jobName>; the service answers
    # .../model-customization-job/<base model id>/<12-char id> (reference/bedrock.md §9), the
    # only form its model's ModelCustomizationJobIdentifier pattern takes for an ARN.
    def init(self: ModelCustomizationJob, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        base = self.base_model_identifier.rsplit("/", 1)[-1]
        digest = hashlib.sha256(self.job_name.encode()).hexdigest()[:12]
        self.job_arn = self.job_arn.rsplit("/", 1)[0] + f"/{base}/{digest}"

    return init


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for S3, IAM, Lambda (no Docker: code is never run) and Bedrock."""
    monkeypatch.setattr(
        ModelCustomizationJob, "__init__", _real_arn(ModelCustomizationJob.__init__)
    )
    monkeypatch.setattr(
        BedrockBackend,
        "get_model_customization_job",
        _by_arn(BedrockBackend.get_model_customization_job),
    )
    monkeypatch.setattr(
        BedrockBackend,
        "stop_model_customization_job",
        _by_arn(BedrockBackend.stop_model_customization_job),
    )
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def staged(aws: None) -> None:
    """The staging bucket and a job role allowed to invoke rlft's grader functions."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName=JOB_ROLE, AssumeRolePolicyDocument=json.dumps(BEDROCK_TRUST))
    iam.put_role_policy(
        RoleName=JOB_ROLE, PolicyName="invoke", PolicyDocument=json.dumps(INVOKE_ANY_GRADER)
    )


@pytest.fixture
def settings() -> BedrockSettings:
    return make_settings()


@pytest.fixture
def provider(staged: None, settings: BedrockSettings) -> BedrockProvider:
    return BedrockProvider(settings=settings, session=boto3.Session(region_name=REGION))


@pytest.fixture
def bedrock() -> SimpleNamespace:
    """The constants and builders tests share (test modules can't import each other here)."""
    return SimpleNamespace(
        region=REGION,
        account=ACCOUNT,
        bucket=BUCKET,
        job_role=JOB_ROLE,
        job_role_arn=JOB_ROLE_ARN,
        make_settings=make_settings,
        FakePackage=FakePackage,
        tiny_zip=tiny_zip,
    )


@pytest.fixture
def set_job_status(aws: None) -> Any:
    """Move a moto job along (moto keeps every job InProgress on its own)."""
    from moto.bedrock.models import bedrock_backends

    def set_status(job_name: str, status: str, **fields: Any) -> None:
        job = bedrock_backends[ACCOUNT][REGION].model_customization_jobs[job_name]
        job.status = status
        for key, value in fields.items():
            setattr(job, key, value)

    return set_status


@pytest.fixture
def make_request(bedrock: SimpleNamespace) -> Any:
    """Build a ``CreateJobRequest`` around a grader payload, skipping dataset upload."""
    from rlft._spec import CreateJobRequest, JobSpec
    from rlft.datasets import Dataset
    from rlft.graders import StringCheck

    def build(
        payload: Any = None, *, key: str = "key-1", name: str | None = "triage", **spec: Any
    ) -> CreateJobRequest:
        rows = [
            {"messages": [{"role": "user", "content": f"ticket {i}"}], "reference_answer": "bug"}
            for i in range(3)
        ]
        grader = spec.pop("grader", None) or StringCheck(
            name="label",
            input="{{ sample.output_text }}",
            reference="{{ item.reference_answer }}",
            operation="eq",
        )
        job_spec = JobSpec(train=Dataset.from_records(rows), grader=grader, name=name, **spec)
        return CreateJobRequest(
            spec=job_spec,
            grader_payload=payload if payload is not None else FakePackage(tiny_zip()),
            training_file=f"s3://{BUCKET}/stage/datasets/train.jsonl",
            validation_file=None,
            idempotency_key=key,
        )

    return build
