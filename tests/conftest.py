from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's config, home or plugins."""
    monkeypatch.setenv("RLFT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("RLFT_HOME", str(tmp_path_factory.mktemp("rlft-home")))
    for name in (
        "RLFT_PROVIDER",
        "RLFT_PROFILE",
        "RLFT_BLOCKED_PLUGINS",
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
