"""Per-backend rules, as each backend declares them: roles, row limits, validation sets,
Bedrock's conventions, TRL's names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlft._plugins import find_provider
from rlft.datasets import Dataset, DatasetRules, check_file

from .ds_helpers import jsonl, row, writer

Write = Callable[[str, str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return writer(tmp_path)


def rows(n: int, **item: Any) -> list[dict[str, Any]]:
    return [row(f"question {i}", **item) for i in range(n)]


def codes(report: Any, severity: str | None = None) -> list[str]:
    return [p.code for p in report.problems if severity is None or p.severity == severity]


@pytest.mark.parametrize("provider", ["openai", "azure", "bedrock", "local"])
def test_every_builtin_backend_declares_its_rules(provider: str) -> None:
    spec = find_provider(provider)
    assert spec is not None and isinstance(spec.dataset, DatasetRules)
    assert spec.dataset.name == provider  # filled in at registration


@pytest.mark.parametrize("target", ["openai", "azure"])
def test_openai_and_azure_refuse_system_and_say_developer(target: str) -> None:
    train = Dataset.from_records(
        [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}]
    )
    valid = Dataset.from_records(rows(1))
    report = train.validate(provider=target, validation=valid)
    (problem,) = report.errors
    assert (problem.code, problem.field, problem.row) == (
        "role-not-supported",
        "messages[0].role",
        0,
    )
    assert '"developer"' in problem.fix


def test_the_generic_rules_accept_system() -> None:
    ds = Dataset.from_records(
        [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}]
    )
    assert ds.validate().ok and ds.validate(provider="local").ok


def test_openai_row_limits(write: Write) -> None:
    train = write("train.jsonl", jsonl(rows(50_001)))
    valid = write("valid.jsonl", jsonl(rows(1_001)))
    report = check_file(train, provider="openai", validation_path=valid)
    too_many = [p for p in report.errors if p.code == "too-many-rows"]
    assert [(p.file, p.severity) for p in too_many] == [
        (str(train), "error"),
        (str(valid), "error"),
    ]
    assert "at most 50,000 rows" in too_many[0].message
    assert "at most 1,000 rows" in too_many[1].message
    assert check_file(train, provider="bedrock").errors  # 20,000 for Bedrock


def test_openai_limits_are_inclusive() -> None:
    train = Dataset.from_records(rows(50))
    valid = Dataset.from_records(rows(1_000))
    assert train.validate(provider="openai", validation=valid).ok


def test_azure_requires_a_validation_set_and_openai_recommends_one() -> None:
    train = Dataset.from_records(rows(20))
    azure = train.validate(provider="azure")
    assert codes(azure, "error") == ["validation-required"]
    openai = train.validate(provider="openai")
    assert openai.ok and codes(openai, "warning") == ["validation-required"]
    assert train.validate(provider="bedrock", grader=None).codes() >= {"too-few-rows"}
    assert "validation-required" not in train.validate(provider="local").codes()


def test_a_validation_set_checked_alone_does_not_ask_for_a_validation_set() -> None:
    valid = Dataset.from_records(rows(5))
    assert valid.validate(provider="azure", role="validation").ok


def test_azure_warns_below_ten_training_rows_and_about_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    train = Dataset.from_records(
        [{"messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, image]}]}]
    )
    report = train.validate(provider="azure", validation=Dataset.from_records(rows(1)))
    assert report.ok
    assert sorted(codes(report, "warning")) == ["content-not-supported", "too-few-rows"]
    assert train.validate(provider="openai", validation=train).ok  # OpenAI takes images


def test_audio_content_is_refused_by_openai() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "...", "format": "wav"}}
    ds = Dataset.from_records([{"messages": [{"role": "user", "content": [audio]}]}])
    report = ds.validate(provider="openai", validation=ds)
    assert set(codes(report, "error")) == {"content-not-supported"}


def bedrock_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "Answer with a number."},
                {"role": "user", "content": f"{i} + 1?"},
            ],
            "reference_answer": {"final_answer": str(i + 1)},
            "task_id": f"t{i}",
        }
        for i in range(n)
    ]


def test_bedrock_accepts_its_documented_shape() -> None:
    report = Dataset.from_records(bedrock_rows(100)).validate(provider="bedrock")
    assert report.ok and not report.problems, str(report)


def test_bedrock_record_counts(write: Write) -> None:
    few = Dataset.from_records(bedrock_rows(99)).validate(provider="bedrock")
    (problem,) = few.errors
    assert problem.code == "too-few-rows" and "at least 100" in problem.message
    many = write("many.jsonl", jsonl(bedrock_rows(1)[:1] * 20_001))
    assert "too-many-rows" in codes(check_file(many, provider="bedrock"), "error")


def test_bedrock_is_single_turn_and_text_only() -> None:
    data = bedrock_rows(100)
    data[3]["messages"] = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    data[5]["messages"] = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
    ]
    data[7]["messages"] = [{"role": "developer", "content": "d"}, {"role": "user", "content": "u"}]
    data[9]["messages"] = [
        {"role": "user", "content": "u"},
        {"role": "system", "content": "s"},
        {"role": "user", "content": "v"},
    ]
    report = Dataset.from_records(data).validate(provider="bedrock")
    found = [(p.row, p.code) for p in report.errors]
    assert (3, "role-not-supported") in found and (3, "multi-turn") in found
    assert (5, "content-not-supported") in found
    assert (7, "role-not-supported") in found
    assert (9, "system-not-first") in found and (9, "multi-turn") in found


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("", "empty-reference-answer"),
        ("  ", "empty-reference-answer"),
        ({}, "empty-reference-answer"),
        (42, "reference-answer-type"),
        (["a"], "reference-answer-type"),
        (None, "reference-answer-type"),
    ],
)
def test_bedrock_reference_answer_must_be_a_non_empty_string_or_object(
    answer: Any, code: str
) -> None:
    data = bedrock_rows(100)
    data[10]["reference_answer"] = answer
    (problem,) = Dataset.from_records(data).validate(provider="bedrock").errors
    assert (problem.row, problem.code, problem.field) == (10, code, "reference_answer")


def test_bedrock_without_reference_answer_on_every_row_is_one_note() -> None:
    data = rows(100, label="x")
    report = Dataset.from_records(data).validate(provider="bedrock")
    assert report.ok
    (note,) = [p for p in report.warnings if p.code == "reference-answer-default"]
    assert note.row is None and note.line is None  # one whole-file note, not 100


def test_bedrock_without_reference_answer_on_some_rows_names_them() -> None:
    data = bedrock_rows(100)
    for index in (4, 40):
        del data[index]["reference_answer"]
    report = Dataset.from_records(data).validate(provider="bedrock")
    assert [(p.row, p.code) for p in report.warnings] == [
        (4, "reference-answer-default"),
        (40, "reference-answer-default"),
    ]


def test_bedrock_row_with_nothing_to_grade_against_is_an_error() -> None:
    data = bedrock_rows(100)
    data[2] = row("bare")
    (problem,) = Dataset.from_records(data).validate(provider="bedrock").errors
    assert (problem.row, problem.code) == (2, "missing-reference-answer")


def test_local_refuses_item_fields_that_collide_with_trl_arguments() -> None:
    ds = Dataset.from_records([row(prompt="p", label="x"), row(completions=[1], label="y")])
    report = ds.validate(provider="local")
    assert [(p.row, p.code, p.field) for p in report.errors] == [
        (0, "reserved-field", "item.prompt"),
        (1, "reserved-field", "item.completions"),
    ]
    assert Dataset.from_records([row(prompt="p")]).validate(provider="openai", validation=ds).ok


def test_local_warns_that_per_row_tools_are_ignored() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    report = Dataset.from_records([{**row(), "tools": tools}]).validate(provider="local")
    assert report.ok and codes(report) == ["tools-ignored"]


def test_an_unknown_provider_runs_the_generic_rules_and_says_so() -> None:
    ds = Dataset.from_records([row()])
    report = ds.validate(provider="nosuch-backend")
    (warning,) = report.warnings
    assert warning.code == "unknown-provider" and "nosuch-backend" in warning.message
    assert "azure, bedrock" in warning.fix and "local" in warning.fix


def test_a_plugins_declared_rules_apply_by_provider_id(write: Write) -> None:
    import rlft
    from rlft.provider import ProviderRegistry, ProviderSettings, ProviderSpec

    class Plugin:
        @rlft.hookimpl
        def rlft_register_providers(self, registry: ProviderRegistry) -> None:
            registry.add(
                ProviderSpec(
                    name="ds-plugin",
                    settings=ProviderSettings,
                    factory="rlft.testing._fake:FakeProvider",
                    dataset=DatasetRules(
                        label="Plugin RFT",
                        roles=frozenset({"user"}),
                        required_item_fields=frozenset({"ticket_id"}),
                        max_rows=2,
                    ),
                )
            )

    rlft.Client(plugins=[Plugin()], autoload=False).provider_specs()
    path = write("t.jsonl", jsonl([row("a", ticket_id=1), row("b"), row("c", ticket_id=3)]))
    report = check_file(path, provider="ds-plugin")
    assert check_file(path).ok  # the generic rules alone accept it
    missing = [p for p in report.errors if p.code == "missing-required-field"]
    assert [(p.line, p.field) for p in missing] == [(2, "item.ticket_id")]
    assert "Plugin RFT needs the item field" in missing[0].message
    assert "too-many-rows" in codes(report, "error")
