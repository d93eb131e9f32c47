"""rlft's provider conformance suite, run against Acme's fake server.

``ProviderConformance`` checks what every backend must do: create, get and cancel a job with
neutral statuses, idempotent creates, ``NotFoundError`` for unknown jobs, ``CapabilityError``
for undeclared operations, only ``RLFTError`` escaping, masked secrets, an idempotent
``aclose()``.
"""

from __future__ import annotations

import pytest
from rlft.provider import Provider
from rlft.testing import FakeFineTuningServer, ProviderConformance

from rlft_acme._provider import AcmeProvider


class TestAcmeConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, acme_provider: AcmeProvider, acme_server: FakeFineTuningServer) -> Provider:
        self.server = acme_server
        return acme_provider

    @pytest.fixture
    def conformance_secrets(self, api_key: str) -> list[str]:
        return [api_key]  # must never show in a repr or an error

    async def settle(self, provider: Provider, job_id: str) -> None:
        self.server.advance(job_id, 2)  # the fake moves only when told
