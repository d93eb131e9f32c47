"""The generated grader Lambda, run in-process from the built zip on Bedrock's event shapes, and
deployed to moto as it is. Event and response shapes: reference/bedrock.md §8."""

from __future__ import annotations

import importlib
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from rlft.exceptions import ConfigurationError
from rlft.graders import Multi, Python, StringCheck, compile
from rlft_providers.bedrock._lambda import code_sha256
from rlft_providers.bedrock._provider import BedrockProvider

pytestmark = pytest.mark.anyio

LABEL = StringCheck(
    name="label",
    input="{{ sample.output_text }}",
    reference="{{ item.reference_answer }}",
    operation="eq",
)
RAISES = Python(
    name="strict",
    source="def grade(sample, item):\n    raise ValueError('grader bug')\n",
)
BOTH = Multi(
    name="both",
    graders={"label": LABEL, "strict": RAISES},
    calculate_output="0.5 * label + 0.5 * strict",
)

Handler = Callable[[Any, Any], list[dict[str, Any]]]


@pytest.fixture
def load_handler(tmp_path: Path) -> Iterator[Callable[[Any], Handler]]:
    """Extract a compiled package and import its handler, as Lambda would."""
    loaded: list[str] = []

    def load(grader: Any) -> Handler:
        folder = tmp_path / f"lambda-{len(loaded)}"
        package = compile(grader, "bedrock")
        with zipfile.ZipFile(__import__("io").BytesIO(package.zip_bytes)) as archive:
            archive.extractall(folder)
        module_name, _, function = package.handler.rpartition(".")
        _forget_generated_modules()
        sys.path.insert(0, str(folder))
        loaded.append(str(folder))
        module = importlib.import_module(module_name)
        assert Path(module.__file__ or "").parent == folder  # the zip's copy, not rlft's
        handler: Handler = getattr(module, function)
        return handler

    yield load
    for folder in loaded:
        sys.path.remove(folder)
    _forget_generated_modules()


def _forget_generated_modules() -> None:
    for name in list(sys.modules):
        if name.startswith(("rlft_grader_handler", "rlft_grader_engine")):
            del sys.modules[name]


def _assert_bedrock_reply(reply: Any, ids: list[Any]) -> None:
    # What AWS's Forge SDK verifier checks (reference/bedrock.md §8.2).
    assert isinstance(reply, list) and [r["id"] for r in reply] == ids
    for row in reply:
        assert isinstance(row["aggregate_reward_score"], int | float)
        for metric in row.get("metrics_list", []):
            assert set(metric) == {"name", "value", "type"}
            assert isinstance(metric["name"], str) and isinstance(metric["value"], int | float)
            assert metric["type"] in ("Metric", "Reward")


def _turns(answer: Any, role: str = "assistant") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Answer with the number only."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": role, "content": answer},
    ]


def test_reference_answer_under_metadata_and_nova_assistant(
    load_handler: Callable[[Any], Handler],
) -> None:
    handler = load_handler(LABEL)
    event = [
        {
            "id": "s-1",
            "messages": _turns("4", role="nova_assistant"),
            "metadata": {"reference_answer": "4", "my_key": "sample-001"},
        }
    ]
    reply = handler(event, None)
    _assert_bedrock_reply(reply, ["s-1"])
    assert reply[0]["aggregate_reward_score"] == 1.0


def test_reference_answer_at_top_level_and_text_parts(
    load_handler: Callable[[Any], Handler],
) -> None:
    handler = load_handler(LABEL)
    event = [
        {
            "id": "s-2",
            "messages": _turns([{"type": "text", "text": "4"}]),
            "reference_answer": "4",
        },
        {"id": "s-3", "messages": _turns([{"type": "text", "text": "5"}]), "reference_answer": "4"},
    ]
    reply = handler(event, None)
    _assert_bedrock_reply(reply, ["s-2", "s-3"])
    assert [r["aggregate_reward_score"] for r in reply] == [1.0, 0.0]


async def test_a_batch_scores_like_grade_does(load_handler: Callable[[Any], Handler]) -> None:
    handler = load_handler(LABEL)
    answers = ["4", "four", " 4", "4", "3"] * 4
    event = [
        {"id": f"b-{i}", "messages": _turns(answer), "metadata": {"reference_answer": "4"}}
        for i, answer in enumerate(answers)
    ]
    reply = handler(event, None)
    _assert_bedrock_reply(reply, [f"b-{i}" for i in range(len(answers))])
    expected = [(await LABEL.grade(a, {"reference_answer": "4"})).score for a in answers]
    assert [r["aggregate_reward_score"] for r in reply] == expected
    assert sum(expected) == 8.0  # the parity is not vacuous: both outcomes occur


async def test_a_grader_that_raises_scores_zero_and_says_so(
    load_handler: Callable[[Any], Handler],
) -> None:
    handler = load_handler(BOTH)
    event = [{"id": "e-1", "messages": _turns("4"), "reference_answer": "4"}]
    [row] = handler(event, None)  # the exception stays inside: no Lambda error for Bedrock
    _assert_bedrock_reply([row], ["e-1"])
    metrics = {m["name"]: (m["value"], m["type"]) for m in row["metrics_list"]}
    assert metrics["label"] == (1.0, "Metric")
    assert metrics["strict"] == (0.0, "Metric")
    assert metrics["grader_error"] == (1.0, "Metric")
    # The failed sub-grader scores 0 in the formula, exactly as grade() says.
    local = await BOTH.grade("4", {"reference_answer": "4"})
    assert row["aggregate_reward_score"] == local.score == 0.5


async def test_the_real_package_deploys_and_redeploys_as_one_version(
    provider: BedrockProvider, make_request: Any
) -> None:
    package = compile(LABEL, "bedrock")
    first = await provider.create_job(make_request(package, key="one"))
    again = await provider.create_job(make_request(compile(LABEL, "bedrock"), key="two"))
    config = boto3.client("lambda").get_function_configuration(FunctionName="rlft-grader-label")
    assert (config["Handler"], config["Runtime"]) == (package.handler, package.runtime)
    assert config["CodeSha256"] == code_sha256(package.zip_bytes)
    # The zip is reproducible, so an unchanged grader is the same published version.
    assert first.metadata["lambda_arn"] == again.metadata["lambda_arn"]
    assert first.metadata["lambda_arn"].endswith(":1")


async def test_grader_dependencies_need_a_layer(
    staged: None, make_request: Any, bedrock: SimpleNamespace
) -> None:
    from rlft.graders import TextSimilarity

    fuzzy = TextSimilarity(
        name="why",
        input="{{ sample.output_text }}",
        reference="{{ item.reference_answer }}",
        evaluation_metric="fuzzy_match",
    )
    package = compile(fuzzy, "bedrock", bundle=False)  # bundled by default; a layer instead
    assert package.requirements  # the compiled grader says what it needs
    provider = BedrockProvider(settings=bedrock.make_settings(), session=boto3.Session())
    with pytest.raises(ConfigurationError, match="lambda_layers") as caught:
        await provider.create_job(make_request(package, grader=fuzzy))
    assert "publish-layer-version" in str(caught.value)

    layer = boto3.client("lambda").publish_layer_version(
        LayerName="rlft-grader-deps",
        Content={"ZipFile": bedrock.tiny_zip()},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]
    provider = BedrockProvider(
        settings=bedrock.make_settings(lambda_layers=(layer,)), session=boto3.Session()
    )
    await provider.create_job(make_request(package, grader=fuzzy))
    config = boto3.client("lambda").get_function_configuration(FunctionName="rlft-grader-why")
    assert [item["Arn"] for item in config["Layers"]] == [layer]
