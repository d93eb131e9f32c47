"""rlft's provider conformance suite, run against both Bedrock providers (AWS on moto)."""

from __future__ import annotations

import boto3
import httpx
import pytest

from rlft._spec import JobSpec
from rlft.testing import ProviderConformance, default_conformance_spec
from rlft.testing._fake_openai_api import FakeFineTuningServer
from rlft_providers.bedrock._open_weight import BedrockOpenWeight
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._settings import BedrockOpenWeightSettings, BedrockSettings


class TestBedrockConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, staged: None, settings: BedrockSettings) -> BedrockProvider:
        return BedrockProvider(settings=settings, session=boto3.Session())

    @pytest.fixture
    def conformance_spec(self) -> JobSpec:
        # Bedrock trains Nova 2 Lite (model None picks it); the default spec's rows already
        # carry the reference_answer Bedrock requires.
        return default_conformance_spec().model_copy(update={"model": None})

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return ["testing"]  # the fake AWS keys the fixtures put in the environment


class TestBedrockOpenWeightConformance(ProviderConformance):
    """Provider ``bedrock-open-weight`` on the shared fake OpenAI-compatible server (its grader
    Lambda on moto)."""

    @pytest.fixture
    def provider(self, staged: None) -> BedrockOpenWeight:
        return BedrockOpenWeight(
            settings=BedrockOpenWeightSettings(region="us-east-1", file_poll_interval=0.001),
            session=boto3.Session(),
            transport=httpx.MockTransport(FakeFineTuningServer(prefix="/v1")),
        )

    @pytest.fixture
    def conformance_spec(self) -> JobSpec:
        return default_conformance_spec().model_copy(update={"model": "openai.gpt-oss-20b"})

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return ["testing"]
