"""The Tinker provider: the conformance suite, the plugin, checks before any remote call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.providers.tinker.conftest import SECRET, make_provider, quickstart_spec

from rlft._models import Hyperparameters
from rlft._plugins import PluginHost
from rlft._spec import JobSpec
from rlft.exceptions import HyperparameterError, UsageError
from rlft.provider import Provider
from rlft.testing import ProviderConformance, default_conformance_spec
from rlft_providers.tinker import _plugin
from rlft_providers.tinker._provider import TinkerProvider
from rlft_providers.tinker._settings import TinkerSettings


@pytest.fixture(autouse=True)
def _registered() -> None:
    """The plugin as a Client loads it (``plugins=[...]``); an install adds its entry point."""
    PluginHost(plugins=[_plugin], autoload=False).registry  # noqa: B018 - loads and records


class TestTinkerConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, tmp_path: Path, server: Any, tiny_model: Path) -> Iterator[Provider]:
        provider = make_provider(tmp_path / "home", server, tiny_model)
        yield provider

        async def stop_all() -> None:  # stop the workers the suite started
            for record in await provider.list_jobs():
                await provider.cancel_job(record.id)

        anyio.run(stop_all)

    @pytest.fixture
    def conformance_secrets(self) -> list[str]:
        return [SECRET]

    @pytest.fixture
    def conformance_spec(self) -> JobSpec:
        spec = default_conformance_spec()  # names a hosted model: use the served one here
        return spec.model_copy(
            update={
                "model": "tiny",
                "hyperparameters": Hyperparameters(
                    max_steps=1000, max_completion_tokens=1, provider_options={"lora_rank": 4}
                ),
            }
        )


def test_the_plugin_registers_without_importing_the_sdk() -> None:
    code = (
        "import sys\n"
        "from rlft.provider import ProviderRegistry\n"
        "from rlft_providers.tinker import _plugin\n"
        "registry = ProviderRegistry()\n"
        "_plugin.rlft_register_providers(registry)\n"
        "[spec] = list(registry); spec.load()\n"
        "heavy = ('tinker', 'torch', 'transformers')\n"
        "print(registry.names(), sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['tinker'] []"


def test_settings_come_from_rlft_toml_and_the_environment(tmp_path: Path) -> None:
    from rlft._config import build_settings, load_config
    from rlft._plugins import find_provider

    environ = {"TINKER_API_KEY": SECRET, "RLFT_TINKER_BASE_URL": "http://127.0.0.1:9"}
    (tmp_path / "rlft.toml").write_text('provider = "tinker"\n[tinker]\ntokenizer = "/models/t"\n')
    config = load_config(cwd=tmp_path, environ=environ)
    spec = find_provider("tinker")
    assert spec is not None and config.provider == "tinker"
    settings = build_settings(spec, config, environ=environ)
    assert isinstance(settings, TinkerSettings)
    assert settings.base_url == "http://127.0.0.1:9" and settings.tokenizer == "/models/t"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_bad_hyperparameters_are_refused_before_any_remote_call(
    tmp_path: Path, server: Any, tiny_model: Path
) -> None:
    provider = make_provider(tmp_path / "home", server, tiny_model)
    for bad in ({"provider_options": {"lora_rank": 0}}, {"samples_per_prompt": 1}):
        with pytest.raises(HyperparameterError):
            provider.check_spec(quickstart_spec(**bad))
    with pytest.raises(UsageError, match="needs a model"):
        provider.check_spec(quickstart_spec().model_copy(update={"model": None}))
    assert server.requests("get_server_capabilities") == 0


@pytest.mark.anyio
async def test_a_rank_the_service_refuses_fails_the_job_naming_the_setting(
    tmp_path: Path, server: Any, tiny_model: Path
) -> None:
    """The server allows ranks up to 64 here; rlft's own range lets 100 through."""
    from tests.providers.tinker.conftest import create, wait_until

    provider = make_provider(tmp_path / "home", server, tiny_model)
    spec = quickstart_spec(max_steps=2, provider_options={"lora_rank": 100})
    record = await create(provider, spec)
    record, _ = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert record.error is not None and record.error.code == "hyperparameter"
    assert "lora_rank=100" in record.error.message
    assert server.requests("forward_backward") == 0


@pytest.mark.anyio
async def test_an_unreachable_service_is_a_clear_error(tmp_path: Path, tiny_model: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = TinkerProvider(
        settings=TinkerSettings(
            home=tmp_path / "home",
            base_url=f"http://127.0.0.1:{port}",
            api_key=SECRET,
            tokenizer=str(tiny_model),
            connect_timeout=2,
        )
    )
    from tests.providers.tinker.conftest import create

    with pytest.raises(UsageError) as info:
        await create(provider, quickstart_spec(max_steps=1))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "base_url" in message
    assert SECRET not in message
