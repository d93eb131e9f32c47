"""Fixtures: Acme's API faked in memory, and a provider wired to it.

``FakeFineTuningServer`` keeps files, jobs, events and checkpoints like the real service, and
moves a job forward only when told (``server.advance(job_id, steps)``), so tests are exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from rlft.testing import FakeFineTuningServer

from rlft_acme._provider import AcmeProvider
from rlft_acme._settings import AcmeSettings

BASE_URL = "https://ft.acme.example/v1"
API_KEY = "acme-test-key-CANARY-0123456789"


async def no_wait(seconds: float) -> None:
    """Retries and file polls wait for nothing in tests."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test sees the developer's keys, rlft.toml or job store."""
    for name in ("ACME_API_KEY", "ACME_BASE_URL", "RLFT_PROVIDER", "RLFT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLFT_HOME", str(tmp_path_factory.mktemp("rlft-home")))


@pytest.fixture
def api_key() -> str:
    """The key the test providers use: a canary that must never show in a repr or an error."""
    return API_KEY


@pytest.fixture
def acme_server() -> FakeFineTuningServer:
    return FakeFineTuningServer(prefix="/v1")


@pytest.fixture
def acme_provider(acme_server: FakeFineTuningServer) -> AcmeProvider:
    """A provider whose HTTP goes to the fake server through an injected transport."""
    settings = AcmeSettings(base_url=BASE_URL, api_key=API_KEY)
    transport = httpx.MockTransport(acme_server)
    return AcmeProvider(settings=settings, transport=transport, sleep=no_wait)


@pytest.fixture
def acme_network(acme_server: FakeFineTuningServer) -> Iterator[FakeFineTuningServer]:
    """The fake server behind respx, for providers that rlft.Client builds itself."""
    with respx.mock(assert_all_mocked=True) as router:
        router.route(host="ft.acme.example").mock(side_effect=acme_server)
        yield acme_server
