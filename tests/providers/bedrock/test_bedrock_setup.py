"""Registration, settings, construction, retries: everything around the calls themselves."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.awsrequest
import botocore.retries.standard
import pytest
from pydantic import ValidationError

from rlft.exceptions import ConfigurationError, MissingDependencyError, RateLimitError, UsageError
from rlft.provider import ProviderRegistry
from rlft_providers.bedrock import _plugin
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._settings import BedrockSettings

pytestmark = pytest.mark.anyio


def test_plugin_registers_the_provider_lazily() -> None:
    registry = ProviderRegistry()
    _plugin.rlft_register_providers(registry)
    spec = registry.get("bedrock")
    assert spec is not None
    assert (spec.settings, spec.extra, spec.requires) == (
        BedrockSettings,
        "bedrock",
        ("boto3", "botocore"),
    )
    assert spec.load() is BedrockProvider
    assert not BedrockProvider.capabilities.pause_job
    assert BedrockProvider.capabilities.deploy_checkpoint


def test_plugin_and_settings_import_no_boto3() -> None:
    code = (
        "import sys, rlft_providers.bedrock._plugin\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ProviderRegistry()
    _plugin.rlft_register_providers(registry)
    spec = registry.get("bedrock")
    assert spec is not None
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "rlft_providers.bedrock._provider", raising=False)
    monkeypatch.delitem(sys.modules, "rlft_providers.bedrock._aws", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'rlft\[bedrock\]'"):
        spec.load()


def test_settings_validate_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="s3://bucket/prefix"):
        BedrockSettings(s3_uri="my-bucket/rlft")
    with pytest.raises(ValidationError, match="IAM role ARN"):
        BedrockSettings(role_arn="rlft-role")
    with pytest.raises(ValidationError, match="both subnet_ids and security_group_ids"):
        BedrockSettings(subnet_ids=("subnet-a",))
    with pytest.raises(ValidationError, match="900"):
        BedrockSettings(lambda_timeout_s=901)
    settings = BedrockSettings(
        s3_uri="s3://bucket/a/b/", subnet_ids="subnet-a, subnet-b", security_group_ids="sg-1"
    )
    assert settings.staging() == ("bucket", "a/b")
    assert settings.output_uri() == "s3://bucket/a/b/output/"
    assert settings.vpc_config() == {
        "subnetIds": ["subnet-a", "subnet-b"],
        "securityGroupIds": ["sg-1"],
    }


def test_no_region_names_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="RLFT_BEDROCK_REGION"):
        BedrockProvider(settings=BedrockSettings())


def test_no_credentials_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID") as caught:
        BedrockProvider(settings=BedrockSettings(region="us-east-1"))
    assert "aws sso login" in str(caught.value)


def test_an_unknown_profile_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="profile"):
        BedrockProvider(settings=BedrockSettings(region="us-east-1", profile="nope"))


def test_check_spec_refuses_before_any_upload(bedrock: SimpleNamespace, make_request: Any) -> None:
    spec = make_request().spec
    bare = BedrockProvider(settings=BedrockSettings(region="us-east-1"), session=boto3.Session())
    with pytest.raises(ConfigurationError, match="role_arn") as caught:
        bare.check_spec(spec)
    assert "RLFT_BEDROCK_ROLE_ARN" in str(caught.value)
    no_bucket = BedrockProvider(
        settings=BedrockSettings(region="us-east-1", role_arn=bedrock.job_role_arn),
        session=boto3.Session(),
    )
    with pytest.raises(ConfigurationError, match="s3_uri"):
        no_bucket.check_spec(spec)

    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    provider.check_spec(spec)  # a good spec passes
    with pytest.raises(UsageError, match="response_format"):
        provider.check_spec(
            spec.model_copy(update={"response_format": {"type": "json_schema", "json_schema": {}}})
        )
    with pytest.raises(UsageError, match="reinforcement fine-tuning"):
        provider.check_spec(spec.model_copy(update={"model": "amazon.titan-text-lite-v1"}))


def test_settings_repr_holds_no_credentials(bedrock: SimpleNamespace) -> None:
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    # The fixture's fake keys are "testing"; nothing about credentials belongs in a repr.
    assert "testing" not in repr(provider)
    assert "secret" not in repr(provider).lower()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


async def test_throttling_is_retried_by_botocore_then_mapped(
    provider: BedrockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No sleeping between attempts; the retry decision itself stays botocore's.
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda *_: 0)
    client = provider._aws.client("bedrock")
    sent: list[str] = []

    def throttle(request: Any, **_: Any) -> Any:
        sent.append(request.url)
        if len(sent) <= throttled:
            return botocore.awsrequest.AWSResponse(
                request.url,
                400,
                {"x-amzn-ErrorType": "ThrottlingException", "x-amzn-RequestId": "req-1"},
                _Raw(b'{"message": "Rate exceeded"}'),
            )
        return None  # on to moto

    client.meta.events.register("before-send.bedrock.ListModelCustomizationJobs", throttle)

    throttled = 2
    assert await provider.list_jobs() == []  # two throttles, then success
    assert len(sent) == 3

    sent.clear()
    throttled = 99
    with pytest.raises(RateLimitError) as caught:
        await provider.list_jobs()
    assert len(sent) == provider.settings.max_attempts == 5
    assert caught.value.attempts == 5
    assert "gave up after 5 attempts" in str(caught.value)
    assert caught.value.request_id == "req-1"


def test_a_botocore_without_rft_names_the_upgrade(
    bedrock: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.model

    def without_rft(self: Any) -> list[str]:  # as botocore before RFT: no RFTConfig shape
        return [name for name in self._service_description["shapes"] if name != "RFTConfig"]

    monkeypatch.setattr(botocore.model.ServiceModel, "shape_names", property(without_rft))
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(ConfigurationError, match=r"pip install -U 'rlft\[bedrock\]'"):
        provider._aws.client("bedrock")
