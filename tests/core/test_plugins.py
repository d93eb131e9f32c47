from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import rlft
from rlft._plugins import PluginHost, builtin_plugins
from rlft.exceptions import (
    DuplicateProviderError,
    MissingDependencyError,
    PluginLoadError,
    UnknownProviderError,
)
from rlft.provider import (
    DatasetRules,
    GraderFacts,
    HyperparameterFacts,
    JobStatus,
    Lifecycle,
    ProviderRegistry,
    ProviderSettings,
    ProviderSpec,
    Rates,
)
from rlft.testing import make_fake_distribution

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_fallback_equals_the_pyproject_entry_points() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["rlft"]
    assert declared == builtin_plugins()  # read from rlft's own distribution metadata


def test_third_party_plugin_is_found_through_a_real_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake_distribution(tmp_path, dist="rlft-acme", entry_point="acme", provider="acme")
    monkeypatch.syspath_prepend(tmp_path)
    client = rlft.Client(autoload=True, provider="acme")  # explicit beats the conftest's env
    found = [(p.distribution, p.version, p.providers) for p in client.plugins()]
    assert ("rlft-acme", "0.1", ["acme"]) in found
    assert client.provider.name == "acme"


def test_autoload_off_skips_third_party_but_keeps_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake_distribution(tmp_path, dist="rlft-acme", entry_point="acme", provider="acme")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setenv("RLFT_DISABLE_PLUGIN_AUTOLOAD", "1")  # read at load time, not import
    host = PluginHost()
    assert "acme" not in host.registry.names()
    assert {"local", "openai", "azure", "bedrock", "fake"} <= set(host.registry.names())
    monkeypatch.setenv("RLFT_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "acme" in PluginHost().registry.names()


def test_blocked_plugins_are_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_distribution(tmp_path, dist="rlft-acme", entry_point="acme", provider="acme")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setenv("RLFT_BLOCKED_PLUGINS", "acme, bedrock")
    names = PluginHost(autoload=True).registry.names()
    assert "acme" not in names and "bedrock" not in names
    assert "local" in names


def test_a_broken_plugin_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_distribution(
        tmp_path,
        dist="rlft-broken",
        entry_point="broken",
        provider="broken",
        module_source="raise RuntimeError('boom at import')\n",
    )
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(PluginLoadError) as info:
        PluginHost(autoload=True).registry
    assert "broken" in str(info.value) and "RLFT_BLOCKED_PLUGINS=broken" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_misspelt_hookimpl_fails_loudly() -> None:
    class Typo:
        @rlft.hookimpl
        def rlft_register_provider(self, registry: ProviderRegistry) -> None:  # missing "s"
            ...

    with pytest.raises(Exception, match="unknown hook 'rlft_register_provider'"):
        PluginHost(plugins=[Typo()], autoload=False).registry


def test_a_duplicate_name_names_both_factories() -> None:
    class Clash:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="local", settings=ProviderSettings, factory="acme.clash:LocalClash"
                )
            )

    with pytest.raises(DuplicateProviderError) as info:
        PluginHost(plugins=[Clash()], autoload=False).registry
    assert "rlft_providers.local._provider:LocalProvider" in str(info.value)
    assert "acme.clash:LocalClash" in str(info.value)


def test_unknown_provider_suggests_the_closest() -> None:
    with pytest.raises(UnknownProviderError, match="did you mean 'bedrock'"):
        rlft.Client(provider="bedrok", autoload=False).provider


def test_missing_sdk_names_the_extra() -> None:
    class Needy:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="needy",
                    settings=ProviderSettings,
                    extra="needy",
                    requires=("rlft_no_such_sdk",),
                    factory="rlft_no_such_sdk.provider:Needy",
                )
            )

    client = rlft.Client(provider="needy", plugins=[Needy()], autoload=False)
    with pytest.raises(MissingDependencyError) as info:
        client.provider
    assert str(info.value) == "provider 'needy' needs rlft_no_such_sdk: pip install 'rlft[needy]'"
    spec = client._host.provider_spec("needy")
    assert spec.missing_requirements() == ["rlft_no_such_sdk"]


def test_a_bug_inside_a_plugin_is_not_disguised_as_a_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "buggy_provider.py").write_text("import rlft_typo_module\n")
    monkeypatch.syspath_prepend(tmp_path)

    class Buggy:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="buggy",
                    settings=ProviderSettings,
                    extra="buggy",
                    requires=("httpx",),
                    factory="buggy_provider:Buggy",
                )
            )

    with pytest.raises(ModuleNotFoundError) as info:
        rlft.Client(provider="buggy", plugins=[Buggy()], autoload=False).provider
    assert not isinstance(info.value, MissingDependencyError)


def test_hookimpls_may_take_fewer_arguments() -> None:
    calls = []

    class NoArgs:
        @rlft.hookimpl
        def rlft_register_providers(self) -> None:
            calls.append("called")

    PluginHost(plugins=[NoArgs()], autoload=False).registry
    assert calls == ["called"]


def test_installed_plugin_is_found_from_a_fresh_interpreter(tmp_path: Path) -> None:
    make_fake_distribution(tmp_path, dist="rlft-acme", entry_point="acme", provider="acme")
    code = textwrap.dedent("""
        import rlft
        client = rlft.Client(provider="acme", autoload=True)
        print(client.provider.name, [p.distribution for p in client.plugins() if p.name == "acme"])
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.check_output([sys.executable, "-c", code], text=True, env=env, cwd=tmp_path)
    assert out.split() == ["acme", "['rlft-acme']"]


def _plugin_declaring(**facts: object) -> object:
    class Declares:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="shaky",
                    settings=ProviderSettings,
                    factory="rlft.testing._fake:FakeProvider",
                    **facts,  # type: ignore[arg-type]
                )
            )

    return Declares()


@pytest.mark.parametrize(
    ("facts", "field"),
    [
        ({"statuses": {"warming": "booting"}}, "statuses['warming']"),
        ({"statuses": {"": "pending"}}, "statuses: key ''"),
        (
            {"dataset": DatasetRules(label="Shaky", roles=frozenset({"robot"}))},
            "dataset.roles: 'robot'",
        ),
        (
            {"dataset": DatasetRules(label="Shaky", roles=frozenset({"user"}), max_rows=0)},
            "dataset.max_rows",
        ),
        (
            {"dataset": DatasetRules(label="S", roles=frozenset({"user"}), render="pickle")},
            "dataset.render",
        ),
        ({"dataset": {"roles": ["user"]}}, "dataset: expected rlft.provider.DatasetRules"),
        ({"rates": Rates(training_per_hour={"": -5.0})}, "rates.training_per_hour['']"),
        ({"rates": Rates(training_per_hour={"m": float("nan")})}, "rates.training_per_hour"),
        (
            {"rates": Rates(grader_tokens_per_million={"gpt": (1.0,)})},  # type: ignore[dict-item]
            "rates.grader_tokens_per_million['gpt']",
        ),
        ({"graders": GraderFacts(format="yaml")}, "graders.format: 'yaml'"),
        ({"graders": GraderFacts(format="openai", compiler="no colon")}, "graders.compiler"),
        ({"graders": GraderFacts(format="openai", notes={"pyhton": "x"})}, "graders.notes"),
        (
            {"graders": GraderFacts(format="openai", pass_threshold_types=["python"])},  # type: ignore[arg-type]
            "graders.pass_threshold_types",
        ),
        (
            {"hyperparameters": HyperparameterFacts(names={"epoch": "n"}, check="m:f")},
            "hyperparameters.names['epoch']",
        ),
        ({"lifecycle": Lifecycle(note="", source="x")}, "lifecycle"),
    ],
)
def test_a_malformed_fact_fails_at_load_naming_the_plugin_and_field(
    facts: dict[str, object], field: str
) -> None:
    host = PluginHost(plugins=[_plugin_declaring(**facts)], autoload=False)
    with pytest.raises(PluginLoadError) as info:
        host.registry
    message = str(info.value)
    assert field in message and "'shaky'" in message, message
    assert "RLFT_BLOCKED_PLUGINS=" in message  # and how to get past it meanwhile


def test_a_spec_that_cannot_be_built_fails_at_load_naming_the_plugin() -> None:
    class Typo:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(ProviderSpec(name="typo", settings=ProviderSettings, factry="a:b"))  # type: ignore[call-arg]

    with pytest.raises(PluginLoadError) as info:
        PluginHost(plugins=[Typo()], autoload=False).registry
    assert "factry" in str(info.value) and isinstance(info.value.__cause__, TypeError)


def test_well_formed_facts_are_kept_normalised() -> None:
    plugin = _plugin_declaring(
        statuses={"Warming": "pending"},
        dataset=DatasetRules(label="Shaky", roles=frozenset({"user"})),
        rates=Rates(training_per_hour={"": 2.5}),
    )
    spec = PluginHost(plugins=[plugin], autoload=False).provider_spec("shaky")
    assert dict(spec.statuses) == {"warming": JobStatus.PENDING}
    assert spec.dataset is not None and spec.dataset.name == "shaky"
    assert spec.plugin and spec.rates is not None


def test_the_builtins_declare_their_facts() -> None:
    host = PluginHost(autoload=False)
    for name in ("openai", "azure", "bedrock", "local"):
        spec = host.provider_spec(name)
        assert spec.dataset is not None and spec.graders is not None, name
        assert spec.hyperparameters is not None, name
    assert host.provider_spec("openai").lifecycle is not None
    assert "2027-01-06" in host.provider_spec("openai").lifecycle.note  # type: ignore[union-attr]
    assert "5,000" in host.provider_spec("azure").lifecycle.note  # type: ignore[union-attr]


def test_a_reference_to_a_missing_module_fails_at_load() -> None:
    plugin = _plugin_declaring(
        graders=GraderFacts(format="lambda", compiler="shaky_no_such_module:compile")
    )
    with pytest.raises(PluginLoadError, match=r"graders.compiler: no module 'shaky_no_such"):
        PluginHost(plugins=[plugin], autoload=False).registry


def test_builtins_come_from_rlfts_own_metadata(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.metadata

    import rlft._plugins as plugins

    assert set(builtin_plugins()) == {"azure", "bedrock", "fake", "local", "openai", "tinker"}
    monkeypatch.setattr(plugins, "_DISTRIBUTION", "rlft-not-installed-here")
    assert builtin_plugins() == {}  # no literal list behind it
    assert "rlft is not installed" in caplog.text
    assert importlib.metadata.distribution("rlft").entry_points  # the real one has them
