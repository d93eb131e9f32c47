"""Client-side rules: botocore checks only minimums and moto checks nothing, so these are ours."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest

from rlft._models import Hyperparameters
from rlft.exceptions import HyperparameterError, UsageError
from rlft_providers.bedrock import _rules


def _shape(name: str) -> Any:
    return botocore.session.get_session().get_service_model("bedrock").shape_for(name)


def test_ranges_match_the_botocore_service_model() -> None:
    # Our table must say what the service model says; a botocore upgrade that moves a limit fails.
    members = _shape("RFTHyperParameters").members
    assert set(_rules.RFT_FIELDS) == set(members)
    for name, rule in _rules.RFT_FIELDS.items():
        meta = members[name].metadata
        if rule.choices:
            assert list(rule.choices) == members[name].enum
        else:
            assert (rule.low, rule.high) == (meta.get("min"), meta.get("max")) or (
                rule.low is None and "min" not in meta
            ), name


def test_neutral_names_map_to_rft_fields() -> None:
    hp = Hyperparameters(
        epochs=2,
        batch_size=32,
        learning_rate=5e-5,
        samples_per_prompt=4,
        max_completion_tokens=750,
        eval_interval=10,
        reasoning_effort="high",
        provider_options={"maxPromptLength": 4000},
    )
    assert _rules.rft_hyperparameters(hp) == {
        "epochCount": 2,
        "batchSize": 32,
        "learningRate": 5e-5,
        "trainingSamplePerPrompt": 4,
        "inferenceMaxTokens": 750,
        "evalInterval": 10,
        "reasoningEffort": "high",
        "maxPromptLength": 4000,
    }


def test_defaults_send_nothing() -> None:
    assert _rules.rft_hyperparameters(Hyperparameters()) == {}
    assert _rules.rft_hyperparameters(Hyperparameters(reasoning_effort="default")) == {}


@pytest.mark.parametrize(
    ("field", "value", "api"),
    [
        ("epochs", 51, "1 to 50"),
        ("batch_size", 8, "16 to 512"),
        ("batch_size", 1024, "16 to 512"),
        ("learning_rate", 0.01, "1e-07 to 0.001"),
        ("learning_rate", 1e-9, "1e-07 to 0.001"),
        ("samples_per_prompt", 1, "2 to 16"),
        ("samples_per_prompt", 17, "2 to 16"),
        ("eval_interval", 101, "1 to 100"),
    ],
)
def test_out_of_range_names_field_value_and_range(field: str, value: Any, api: str) -> None:
    with pytest.raises(HyperparameterError) as caught:
        _rules.rft_hyperparameters(Hyperparameters(**{field: value}))
    error = caught.value
    assert (error.provider, error.name, error.value) == ("bedrock", field, value)
    assert error.allowed == api
    assert field in str(error) and api in str(error)


def test_the_edges_of_each_range_are_accepted() -> None:
    low = Hyperparameters(
        epochs=1, batch_size=16, learning_rate=1e-7, samples_per_prompt=2, eval_interval=1
    )
    high = Hyperparameters(
        epochs=50, batch_size=512, learning_rate=1e-3, samples_per_prompt=16, eval_interval=100
    )
    assert _rules.rft_hyperparameters(low)["batchSize"] == 16
    assert _rules.rft_hyperparameters(high)["batchSize"] == 512


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate_multiplier", 2.0),
        ("seed", 7),
        ("eval_samples", 2),
        ("compute_multiplier", 1.5),
        ("max_steps", 10),
    ],
)
def test_settings_nova_lacks_are_refused_with_the_fix(field: str, value: Any) -> None:
    with pytest.raises(HyperparameterError, match=field) as caught:
        _rules.rft_hyperparameters(Hyperparameters(**{field: value}))
    assert "not supported" in caught.value.allowed


def test_provider_options_are_checked_by_api_name() -> None:
    with pytest.raises(HyperparameterError, match="provider_options.batchsize"):
        _rules.rft_hyperparameters(Hyperparameters(provider_options={"batchsize": 32}))
    with pytest.raises(HyperparameterError, match="low | medium | high"):
        _rules.rft_hyperparameters(Hyperparameters(provider_options={"reasoningEffort": "extreme"}))
    with pytest.raises(HyperparameterError, match="repeats a neutral setting"):
        _rules.rft_hyperparameters(
            Hyperparameters(batch_size=32, provider_options={"batchSize": 64})
        )
    with pytest.raises(HyperparameterError, match="epochCount"):
        _rules.rft_hyperparameters(Hyperparameters(provider_options={"epochCount": "2"}))


def test_models() -> None:
    assert _rules.check_model(None) == "amazon.nova-2-lite-v1:0:256k"
    foundation = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0:256k"
    assert _rules.check_model(foundation) == foundation
    custom = (
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/"
        "amazon.nova-2-lite-v1:0:256k/abcdefghij12"
    )
    assert _rules.check_model(custom) == custom  # iterative training on an earlier result
    with pytest.raises(UsageError, match="amazon.nova-2-lite-v1:0:256k") as caught:
        _rules.check_model("amazon.nova-lite-v1:0")
    assert "allow_unknown_models" in str(caught.value)
    assert _rules.check_model("amazon.nova-3-v1:0", allow_unknown=True) == "amazon.nova-3-v1:0"


def test_open_weight_selection() -> None:
    assert _rules.is_open_weight("openai.gpt-oss-20b")
    assert _rules.is_open_weight("qwen.qwen3-32b-v1:0")
    assert not _rules.is_open_weight("amazon.nova-2-lite-v1:0:256k")
    assert not _rules.is_open_weight(None)


def _pattern(shape: str, member: str) -> re.Pattern[str]:
    return re.compile(_shape(shape).members[member].metadata["pattern"])


@pytest.mark.parametrize("name", [None, "Ticket triage v2!", "x" * 200, "---", "ünïcode"])
def test_names_and_token_satisfy_the_api_patterns(name: str | None) -> None:
    job, model = _rules.job_names(name, "key-1")
    token = _rules.client_token("key-1")
    request = "CreateModelCustomizationJobRequest"
    assert _pattern(request, "jobName").fullmatch(job) and len(job) <= 63
    assert _pattern(request, "customModelName").fullmatch(model) and len(model) <= 63
    assert _pattern(request, "clientRequestToken").fullmatch(token) and len(token) <= 256
    deployment = _rules.deployment_name(None, "arn:model", hint=name)
    assert _pattern("CreateCustomModelDeploymentRequest", "modelDeploymentName").fullmatch(
        deployment
    )


def test_names_and_token_are_deterministic_per_key() -> None:
    assert _rules.job_names("a", "k") == _rules.job_names("a", "k")
    assert _rules.job_names("a", "k") != _rules.job_names("a", "other")
    assert _rules.client_token("k") == _rules.client_token("k") != _rules.client_token("j")


def test_deployment_name_given_is_checked() -> None:
    assert _rules.deployment_name("my-deploy_1", "arn") == "my-deploy_1"
    with pytest.raises(UsageError, match="not valid on Bedrock"):
        _rules.deployment_name("my deploy", "arn")


def test_labels_become_job_tags() -> None:
    assert _rules.check_labels({"team": "support", "run": "7"}) == [
        {"key": "team", "value": "support"},
        {"key": "run", "value": "7"},
    ]
    with pytest.raises(UsageError, match="aws:owner"):
        _rules.check_labels({"aws:owner": "me"})
    with pytest.raises(UsageError, match="team"):
        _rules.check_labels({"team": "a|b"})


# --- dataset roles: few-shot assistant turns (AWS's RFT data guide: system, user, assistant) ------


def _rows(messages: list[dict[str, str]]) -> list[dict[str, object]]:
    # 100 distinct rows (Bedrock's minimum): the last turn carries the row number.
    return [
        {"messages": [*messages[:-1], {**messages[-1], "content": f"{i}"}], "reference_answer": "4"}
        for i in range(100)
    ]


FEW_SHOT = [
    {"role": "system", "content": "Answer with a number."},
    {"role": "user", "content": "1 + 1?"},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "2 + 2?"},
]


def test_few_shot_assistant_turns_are_accepted_and_uploaded_as_written() -> None:
    from rlft.datasets import Dataset, render

    data = Dataset.from_records(_rows(FEW_SHOT))
    report = data.validate(provider="bedrock")
    assert not report.errors and not report.warnings
    first = json.loads(render(data, "bedrock").splitlines()[0])
    assert first["messages"] == [*FEW_SHOT[:-1], {"role": "user", "content": "0"}]
    assert first["reference_answer"] == "4"


@pytest.mark.parametrize(
    ("messages", "code", "field"),
    [
        (  # two user turns in a row: a conversation, not one prompt
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "multi-turn",
            "messages[1]",
        ),
        (  # an example answer before any question
            [{"role": "assistant", "content": "2"}, {"role": "user", "content": "b"}],
            "few-shot-order",
            "messages[0]",
        ),
        (  # the model must answer last: an assistant turn can't end the prompt
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "2"}],
            "last-not-user",
            "messages[1].role",
        ),
        ([{"role": "tool", "content": "x"}, {"role": "user", "content": "b"}], None, None),
    ],
)
def test_few_shot_turns_must_alternate_and_end_with_the_user(
    messages: list[dict[str, str]], code: str | None, field: str | None
) -> None:
    from rlft.datasets import Dataset
    from rlft.exceptions import DatasetValidationError

    try:
        report = Dataset.from_records(_rows(messages)).validate(provider="bedrock")
    except DatasetValidationError as exc:  # rules of every backend fail at load already
        report = exc.report
    found = {(p.code, p.field) for p in report.errors}
    if code is None:
        assert ("role-not-supported", "messages[0].role") in found
    else:
        assert (code, field) in found
