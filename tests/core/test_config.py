from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from rlft._config import build_settings, load_config
from rlft.exceptions import ConfigurationError
from rlft.provider import ProviderSettings, ProviderSpec

SENTINEL = "sk-rlft-canary-0123456789"


class AcmeSettings(ProviderSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    env_fields: ClassVar[Mapping[str, str]] = {"api_key": "ACME_API_KEY"}
    region: str = "eu-west-1"
    retries: int = 2
    api_key: SecretStr | None = None


SPEC = ProviderSpec(name="acme", settings=AcmeSettings, factory="acme:Acme")


def test_explicit_beats_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(cwd=tmp_path).provider == "local"  # the default
    (tmp_path / "rlft.toml").write_text('provider = "bedrock"\n')
    assert load_config(cwd=tmp_path).provider == "bedrock"  # the file beats defaults
    monkeypatch.setenv("RLFT_PROVIDER", "openai")  # env beats the file
    assert load_config(cwd=tmp_path).provider == "openai"
    assert load_config(cwd=tmp_path, provider="azure").provider == "azure"  # explicit beats all


def test_pyproject_tool_table_and_parent_folders(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.rlft]\nprovider = "openai"\n')
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    config = load_config(cwd=nested)
    assert config.provider == "openai"
    assert config.file == tmp_path / "pyproject.toml"


def test_profiles_overlay_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rlft.toml").write_text(
        'provider = "local"\n[acme]\nregion = "us-east-1"\nretries = 5\n'
        '[profiles.prod]\nprovider = "acme"\n[profiles.prod.acme]\nregion = "ap-south-1"\n'
    )
    assert load_config(cwd=tmp_path).provider == "local"
    prod = load_config(cwd=tmp_path, profile="prod")
    assert prod.provider == "acme"
    settings = build_settings(SPEC, prod, environ={})
    assert isinstance(settings, AcmeSettings)
    assert (settings.region, settings.retries) == ("ap-south-1", 5)
    monkeypatch.setenv("RLFT_PROFILE", "prod")
    assert load_config(cwd=tmp_path).provider == "acme"
    with pytest.raises(ConfigurationError, match="unknown profile 'staging'.*profiles: prod"):
        load_config(cwd=tmp_path, profile="staging")


def test_settings_precedence(tmp_path: Path) -> None:
    (tmp_path / "rlft.toml").write_text('[acme]\nregion = "from-file"\nretries = 3\n')
    config = load_config(cwd=tmp_path)
    env = {"RLFT_ACME_REGION": "from-env"}
    settings = build_settings(SPEC, config, environ=env)
    assert isinstance(settings, AcmeSettings)
    assert (settings.region, settings.retries) == ("from-env", 3)
    settings = build_settings(SPEC, config, environ=env, overrides={"region": "explicit"})
    assert isinstance(settings, AcmeSettings)
    assert settings.region == "explicit"


def test_a_secret_in_a_file_is_refused_naming_the_env_var(tmp_path: Path) -> None:
    (tmp_path / "rlft.toml").write_text(f'[acme]\napi_key = "{SENTINEL}"\n')
    with pytest.raises(ConfigurationError) as info:
        build_settings(SPEC, load_config(cwd=tmp_path), environ={})
    assert "ACME_API_KEY" in str(info.value)
    assert SENTINEL not in str(info.value)


def test_bad_values_name_key_and_source_without_echoing(tmp_path: Path) -> None:
    (tmp_path / "rlft.toml").write_text('[acme]\nretries = "many"\n')
    with pytest.raises(ConfigurationError) as info:
        build_settings(SPEC, load_config(cwd=tmp_path), environ={})
    message = str(info.value)
    assert "retries" in message and "rlft.toml [acme]" in message
    assert "many" not in message


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "rlft.toml").write_text("provider = \n")
    with pytest.raises(ConfigurationError, match="rlft.toml: not valid TOML"):
        load_config(cwd=tmp_path)


def test_secrets_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = build_settings(SPEC, load_config(cwd=tmp_path), environ={"ACME_API_KEY": SENTINEL})
    assert isinstance(settings, AcmeSettings)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == SENTINEL
    for text in (repr(settings), str(settings), settings.model_dump_json(), caplog.text):
        assert SENTINEL not in text
