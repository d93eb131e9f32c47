"""A plugin's grader facts drive ``rlft.graders.compile`` and the support matrix, by provider id."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlft
from rlft import graders as g
from rlft._plugins import PluginHost
from rlft.exceptions import GraderNotSupportedError, UsageError
from rlft.provider import GraderFacts, ProviderRegistry, ProviderSettings, ProviderSpec

CHECK = g.StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)
COSINE = g.TextSimilarity(
    name="cos", input="{{ sample.output_text }}", reference="x", evaluation_metric="cosine"
)


def gizmo_spec(**facts: object) -> ProviderSpec:
    return ProviderSpec(
        name="gizmo",
        settings=ProviderSettings,
        factory="rlft.testing._fake:FakeProvider",
        **facts,  # type: ignore[arg-type]
    )


def load(spec: ProviderSpec) -> ProviderSpec:
    class Plugin:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(spec)

    return PluginHost(plugins=[Plugin()], autoload=False).provider_spec(spec.name)


def test_a_declared_compiler_runs_after_the_format_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gizmo_compiler.py").write_text(
        "def compile_grader(grader, **options):\n"
        "    return {'gizmo': grader.name, 'options': options}\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    load(gizmo_spec(graders=GraderFacts(format="openai", compiler="gizmo_compiler:compile_grader")))
    assert g.compile(CHECK, "gizmo", region="eu") == {"gizmo": "label", "options": {"region": "eu"}}
    with pytest.raises(GraderNotSupportedError) as info:  # the openai format's refusal holds
        g.compile(COSINE, "gizmo")
    assert info.value.target == "gizmo"


def test_without_a_compiler_the_format_builds_it() -> None:
    load(gizmo_spec(graders=GraderFacts(format="openai")))
    assert g.compile(CHECK, "gizmo") == g.compile(CHECK, "openai") == CHECK.to_dict()
    with pytest.raises(UsageError, match="takes no options"):
        g.compile(CHECK, "gizmo", region="eu")


def test_a_backend_declaring_no_grader_facts_gets_the_neutral_grader() -> None:
    load(gizmo_spec())
    assert g.compile(CHECK, "gizmo") is CHECK


def test_the_support_matrix_has_a_column_per_declaring_backend() -> None:
    spec = load(
        gizmo_spec(graders=GraderFacts(format="lambda", notes={"python": "in Gizmo's sandbox"}))
    )
    table = g.support_table_markdown([spec])
    header = table.splitlines()[0]
    assert header == "| Grader | `gizmo` | `openai` | `trl` | `lambda` | `neutral` |"
    assert "| python | yes: in Gizmo's sandbox |" in table
    assert g.support_columns([spec])[0] == "gizmo"


def test_an_unknown_target_lists_providers_and_formats() -> None:
    with pytest.raises(UsageError, match=r"name a provider id \(.*bedrock.*\) or a format"):
        g.compile(CHECK, "nosuch-target")
