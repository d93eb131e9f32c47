"""Both backends pass rlft's provider conformance suite against the stateful fake server, and
run a whole job lifecycle through ``rlft.Client``."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest
import respx

from rlft import Client
from rlft._models import JobStatus
from rlft.provider import Provider
from rlft.testing import FakeFineTuningServer, ProviderConformance
from rlft_providers.azure._provider import AzureProvider
from rlft_providers.azure._settings import AzureSettings
from rlft_providers.openai._provider import OpenAIProvider
from rlft_providers.openai._settings import OpenAISettings

OPENAI_SECRET = "sk-conformance-CANARY-0123456789"
AZURE_SECRET = "azure-conformance-CANARY-0123456789"


async def _no_wait(seconds: float) -> None:
    return None


class TestOpenAIConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, mock: respx.MockRouter) -> Provider:
        self.server = FakeFineTuningServer(prefix="/v1")
        mock.route(host="api.openai.com").mock(side_effect=self.server)
        settings = OpenAISettings(api_key=OPENAI_SECRET)
        return OpenAIProvider(settings=settings, sleep=_no_wait)

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return [OPENAI_SECRET]

    async def settle(self, provider: Provider, job_id: str) -> None:
        self.server.advance(job_id, 2)


class TestAzureClassicConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, mock: respx.MockRouter) -> Provider:
        self.server = FakeFineTuningServer(
            prefix="/openai", flavour="azure", api_version="2025-04-01-preview"
        )
        mock.route(host="res.openai.azure.com").mock(side_effect=self.server)
        settings = AzureSettings(endpoint="https://res.openai.azure.com", api_key=AZURE_SECRET)
        return AzureProvider(settings=settings, sleep=_no_wait)

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return [AZURE_SECRET]

    async def settle(self, provider: Provider, job_id: str) -> None:
        self.server.advance(job_id, 2)


@pytest.mark.anyio
async def test_a_whole_job_through_the_client(
    mock: respx.MockRouter, spec, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Config from the environment, create, events to the end, checkpoints, results."""
    server = FakeFineTuningServer(prefix="/v1", total_steps=4)
    mock.route(host="api.openai.com").mock(side_effect=server)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    from rlft_providers.openai import _plugin

    fast = {"file_poll_interval": 0.001}  # the fake processes a file on its first poll
    async with Client(
        provider="openai", plugins=[_plugin], autoload=False, cwd=tmp_path, settings=fast
    ) as client:
        assert isinstance(client.provider, OpenAIProvider)
        job = await client.jobs.create(spec=spec)
        assert job.status is JobStatus.PENDING
        server.advance(job.id, 6)  # running, four steps, succeeded
        seen = [event async for event in job.events(follow=False)]
        steps = [e.metrics.step for e in seen if e.metrics is not None]
        assert steps == [1, 2, 3, 4]
        await job.refresh()
        assert job.status is JobStatus.SUCCEEDED and job.fine_tuned_model
        checkpoints = await job.checkpoints()
        assert [c.step for c in checkpoints] == [2, 4]
        files = await job.download_results(tmp_path / "results")
        assert files[0].read_text().startswith("step,train_reward_mean")
        again = await client.jobs.create(spec=spec)  # same spec, same key: the same job
        assert again.id == job.id
    uploads = [r for r in server.requests if r.method == "POST" and r.url.path == "/v1/files"]
    assert len(uploads) == 2  # train and validation, once each (content-hash staging)


class TestAzureV1EntraConformance(ProviderConformance):
    """The v1 route with an Entra ID token: Bearer only, no api-version."""

    @pytest.fixture
    def provider(self, mock: respx.MockRouter) -> Provider:
        def bearer_only(request: httpx.Request) -> bool:
            return request.headers.get("authorization") == "Bearer entra-conformance-token"

        self.server = FakeFineTuningServer(
            prefix="/openai/v1", flavour="azure", authorized=bearer_only
        )
        mock.route(host="res.openai.azure.com").mock(side_effect=self.server)
        settings = AzureSettings(endpoint="https://res.openai.azure.com", api="v1")
        return AzureProvider(settings=settings, sleep=_no_wait, credential=_StaticCredential())

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return ["entra-conformance-token"]

    async def settle(self, provider: Provider, job_id: str) -> None:
        self.server.advance(job_id, 2)


class _StaticCredential:
    async def get_token(self, *scopes: str) -> SimpleNamespace:
        return SimpleNamespace(token="entra-conformance-token", expires_on=time.time() + 3600)

    async def close(self) -> None:
        return None


def test_plugins_register_without_importing_sdks() -> None:
    """The plugin modules and providers import neither ``azure.identity`` nor ``openai``."""
    code = (
        "import sys\n"
        "from rlft.provider import ProviderRegistry\n"
        "from rlft_providers.openai import _plugin as o\n"
        "from rlft_providers.azure import _plugin as a\n"
        "registry = ProviderRegistry()\n"
        "o.rlft_register_providers(registry); a.rlft_register_providers(registry)\n"
        "for spec in registry: spec.load()\n"
        "heavy = ('azure.identity', 'openai')\n"
        "print(registry.names(), sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['azure', 'openai'] []"


def test_every_key_in_the_example_config_is_a_real_setting() -> None:
    """``examples/hosted.rlft.toml`` documents settings (most commented out): each must exist."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[3] / "examples" / "hosted.rlft.toml").read_text()
    models = {"openai": OpenAISettings, "azure": AzureSettings}
    section, seen = None, set()
    for line in text.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = header.group(1)
        elif section and (key := re.match(r"#?\s?(\w+) = ", line)):
            assert key.group(1) in models[section].model_fields, (section, key.group(1))
            seen.add((section, key.group(1)))
    assert ("openai", "base_url") in seen and ("azure", "subscription_id") in seen
