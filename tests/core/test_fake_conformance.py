from __future__ import annotations

import pytest
from pydantic import SecretStr

from rlft.testing import FakeProvider, FakeSettings, ProviderConformance

SECRET = "sk-fake-conformance-secret"


class TestFakeProvider(ProviderConformance):
    @pytest.fixture
    def provider(self) -> FakeProvider:
        return FakeProvider(settings=FakeSettings(api_key=SecretStr(SECRET)))

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return [SECRET]
