"""rlft's provider conformance suite, run against the Bedrock provider on moto."""

from __future__ import annotations

import boto3
import pytest

from rlft._spec import JobSpec
from rlft.testing import ProviderConformance, default_conformance_spec
from rlft_providers.bedrock._provider import BedrockProvider
from rlft_providers.bedrock._settings import BedrockSettings


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
