"""compile(grader, "bedrock"): the Lambda package, and its handler on Bedrock's event shapes.

Event and reply shapes: reference/bedrock.md §8. The handler is imported from the built zip.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.exceptions import UsageError

from .conftest import ScriptedJudge

LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_text }}",
    reference="{{ item.reference_answer }}",
    operation="eq",
)
SIMILAR = g.TextSimilarity(
    name="close",
    input="{{ sample.output_text }}",
    reference="{{ item.reference_answer }}",
    evaluation_metric="fuzzy_match",
)
CODE = g.Python(
    name="code",
    source="import numpy\n\ndef grade(sample, item):\n    return float(item['easy'])\n",
)
TRIAGE = g.Multi(
    name="triage", graders={"label": LABEL, "close": SIMILAR}, calculate_output="label"
)
Load = Callable[..., ModuleType]


def bedrock_sample(
    sample_id: str, answer: Any, *, role: str = "assistant", **extra: Any
) -> dict[str, Any]:
    return {
        "id": sample_id,
        "messages": [
            {"role": "user", "content": "What is 6 x 7?"},
            {"role": role, "content": answer},
        ],
        **extra,
    }


def assert_bedrock_reply(reply: Any, ids: list[Any]) -> None:
    """What AWS's Forge SDK verifier checks (reference/bedrock.md §8.2)."""
    assert isinstance(reply, list) and [row["id"] for row in reply] == ids
    for row in reply:
        assert set(row) == {"id", "aggregate_reward_score", "metrics_list"}
        assert isinstance(row["aggregate_reward_score"], float)
        for metric in row["metrics_list"]:
            assert set(metric) == {"name", "value", "type"} and metric["type"] in (
                "Metric",
                "Reward",
            )
    json.dumps(reply)  # a Lambda reply must be JSON


def test_package_shape_and_reproducibility() -> None:
    package = g.compile(TRIAGE, "bedrock")
    assert (package.handler, package.runtime) == (
        "rlft_grader_handler.lambda_handler",
        "python3.12",
    )
    assert package.requirements == ()  # bundled: nothing left for a layer
    assert [spec.split("==")[0] for spec in package.bundled] == ["rapidfuzz"]
    files = set(package.files)
    assert {
        "rlft_grader_handler.py",
        "rlft_grader.json",
        "rlft_grader_engine/engine.py",
        "anyio/__init__.py",
        "typing_extensions.py",
        "rlft_grader_engine/pyworker.py",
        "rapidfuzz/__init__.py",
    } <= files
    assert not [f for f in files if f.endswith(".pyc")]
    assert [f for f in files if f.endswith(".so")]  # rapidfuzz's compiled parts, for Lambda
    assert g.compile(TRIAGE, "bedrock").zip_bytes == package.zip_bytes  # reproducible
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        config = json.loads(archive.read("rlft_grader.json"))
        engine = archive.read("rlft_grader_engine/engine.py").decode()
    assert config["grader"] == TRIAGE.to_dict() and config["judge"] == "bedrock"
    assert "from rlft_grader_engine.template import" in engine
    # Only the lazy, never-taken-in-Lambda sandbox import may still name rlft.
    assert [line for line in engine.splitlines() if "rlft.graders" in line] == [
        "            from rlft.graders._sandbox.pool import default_pool"
    ]


def test_requirements_follow_the_grader() -> None:
    judge = g.ScoreModel(
        name="j",
        model="amazon.nova-pro-v1:0",
        input=[g.Message(role="user", content="{{ sample.output_text }}")],
    )
    assert g.compile(judge, "bedrock").bundled == ()  # boto3 is in the Lambda runtime
    openai = g.compile(judge, "bedrock", judge="openai", bundle=False)
    assert openai.requirements == ("httpx>=0.27",)
    code = g.compile(CODE, "bedrock", bundle=False)
    assert code.requirements == ("numpy",)  # the grader's own imports
    with pytest.raises(UsageError, match="judge must be"):
        g.compile(judge, "bedrock", judge="vertex")


def test_handler_on_bedrocks_event_shapes(load_lambda: Load) -> None:
    handler = load_lambda(TRIAGE).lambda_handler
    event = [
        bedrock_sample("top", "42", reference_answer="42"),  # SageMaker docs / AWS samples
        bedrock_sample(
            "meta", "42", metadata={"reference_answer": "42", "task_id": "t1"}
        ),  # Bedrock docs
        bedrock_sample(
            "nova", [{"type": "text", "text": "42"}], role="nova_assistant", reference_answer="42"
        ),
        bedrock_sample("wrong", "41", reference_answer="42"),
        bedrock_sample("missing", "42"),  # no reference: fails closed
        {
            "id": "no-answer",
            "messages": [{"role": "user", "content": "hi"}],
            "reference_answer": "x",
        },
    ]
    reply = handler(event, None)
    assert_bedrock_reply(reply, ["top", "meta", "nova", "wrong", "missing", "no-answer"])
    scores = [row["aggregate_reward_score"] for row in reply]
    assert scores == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    errors = [
        next(m["value"] for m in row["metrics_list"] if m["name"] == "grader_error")
        for row in reply
    ]
    assert errors == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    first = {m["name"]: (m["value"], m["type"]) for m in reply[0]["metrics_list"]}
    assert first == {
        "triage": (1.0, "Reward"),
        "label": (1.0, "Metric"),
        "close": (1.0, "Metric"),
        "grader_error": (0.0, "Metric"),
    }


def test_handler_accepts_a_single_sample_and_a_json_string(load_lambda: Load) -> None:
    handler = load_lambda(LABEL).lambda_handler
    one = bedrock_sample("a", "42", reference_answer="42")
    assert handler(one, None)[0]["aggregate_reward_score"] == 1.0
    assert handler(json.dumps([one]), None)[0]["aggregate_reward_score"] == 1.0
    assert handler({"unexpected": 1}, None) == []  # nothing to reply to; logged, not raised
    assert handler("not json", None) == []


def test_python_grader_runs_in_a_child_with_the_pools_rules(load_lambda: Load) -> None:
    load_lambda(g.Python(name="p", source="def grade(sample, item):\n    return 1\n"))
    runtime = sys.modules["rlft_grader_engine.lambda_handler"]
    python = runtime.LambdaPython(timeout_s=0.5)
    engine = sys.modules["rlft_grader_engine.engine"]

    def run(source: str) -> Any:
        options = engine.EngineOptions(pool=python)
        spec = {"type": "python", "name": "p", "source": source}
        return anyio.run(engine.evaluate, spec, "out", {"k": 2}, options)

    ok = run("def grade(sample, item):\n    return item['k'] / 4\n")
    assert (ok.score, ok.errors) == (0.5, ())
    for source, kind in [
        ("def grade(sample, item):\n    return float('nan')\n", "python_invalid_return"),
        ("def grade(sample, item):\n    return 'high'\n", "python_invalid_return"),
        ("def grade(sample, item):\n    return True\n", "python_invalid_return"),
        ("def grade(sample, item):\n    raise KeyError('x')\n", "python_runtime"),
        ("raise ImportError('no numpy here')\n", "python_runtime"),
        ("import time\ndef grade(sample, item):\n    time.sleep(3)\n    return 1.0\n", "timeout"),
    ]:
        result = run(source)
        assert (result.score, result.errors) == (0.0, (kind,)), source
    # A grader mutating its inputs does not leak into the next call.
    mutate = "def grade(sample, item):\n    item['k'] = 100\n    return item['k']\n"
    assert run(mutate).score == 100.0 and run("def grade(s, i):\n    return i['k']\n").score == 2.0


def test_model_graders_in_lambda_use_the_configured_judge(load_lambda: Load) -> None:
    grader = g.ScoreModel(
        name="j",
        model="amazon.nova-pro-v1:0",
        input=[
            g.Message(
                role="user", content="{{ sample.output_text }} vs {{ item.reference_answer }}"
            )
        ],
    )
    module = load_lambda(grader, judge_model="amazon.nova-lite-v1:0")
    handler = module._HANDLER
    assert type(handler.options.judge).__name__ == "BedrockJudge"
    assert handler.options.judge.model == "amazon.nova-lite-v1:0"
    runtime = sys.modules["rlft_grader_engine.lambda_handler"]
    config = json.loads((Path(module.__file__).parent / "rlft_grader.json").read_text())
    judge = ScriptedJudge('{"result": 0.9, "steps": []}')
    scripted = runtime.Handler(config, judge=judge)
    reply = scripted([bedrock_sample("x", "42", reference_answer="42")])
    assert reply[0]["aggregate_reward_score"] == 0.9
    assert judge.requests[0].messages == [{"role": "user", "content": "42 vs 42"}]


def test_the_vendored_engine_needs_neither_rlft_nor_pydantic(tmp_path: Path) -> None:
    package = g.compile(TRIAGE, "bedrock")
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        archive.extractall(tmp_path)
    event = [bedrock_sample("a", "42", reference_answer="42")]
    code = (
        "import json, sys\n"
        "for name in ('rlft', 'pydantic', 'pydantic_core'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import rlft_grader_handler\n"
        f"print(json.dumps(rlft_grader_handler.lambda_handler({event!r}, None)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert_bedrock_reply(reply, ["a"])
    assert reply[0]["aggregate_reward_score"] == 1.0
