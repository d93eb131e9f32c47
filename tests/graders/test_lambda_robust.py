"""The Lambda survives any grader and grades only the model's answer (issue 14, items 1 and 3).

The handler is imported from the built zip, as Lambda imports it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from rlft import graders as g

from .test_lambda import assert_bedrock_reply, bedrock_sample

Load = Callable[..., ModuleType]

SOURCES = {
    "ok": "def grade(sample, item):\n    return 1.0\n",
    "system_exit": "import sys\ndef grade(sample, item):\n    sys.exit(3)\n",
    "keyboard": "def grade(sample, item):\n    raise KeyboardInterrupt\n",
    "os_exit": "import os\ndef grade(sample, item):\n    os._exit(9)\n",
    "exit_at_import": "raise SystemExit('at import')\ndef grade(sample, item):\n    return 1.0\n",
}


def _by_item(kind: str) -> g.Python:
    # One grader whose behaviour the item picks, so one batch mixes every failure.
    body = "".join(
        f"    if item['kind'] == {name!r}:\n        return _{name}(sample, item)\n"
        for name in SOURCES
        if name != "exit_at_import"
    )
    helpers = "".join(
        source.replace("def grade(", f"def _{name}(")
        for name, source in SOURCES.items()
        if name != "exit_at_import"
    )
    return g.Python(name=kind, source=f"{helpers}\ndef grade(sample, item):\n{body}")


def _running_grader_code() -> list[str]:
    """Threads of this process executing a grader's code (compiled as ``<grader>``)."""
    found = []
    for thread_id, frame in sys._current_frames().items():
        walker: Any = frame
        while walker is not None:
            if walker.f_code.co_filename == "<grader>":
                found.append(str(thread_id))
            walker = walker.f_back
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def test_base_exceptions_fail_their_sample_and_the_container_lives_on(load_lambda: Load) -> None:
    handler = load_lambda(_by_item("mixed")).lambda_handler
    kinds = ["ok", "system_exit", "keyboard", "os_exit", "ok"]
    event = [bedrock_sample(f"s{i}", "answer", kind=kind) for i, kind in enumerate(kinds)]
    for _ in range(2):  # a second invocation in the same warm container still works
        reply = handler(event, None)
        assert_bedrock_reply(reply, [f"s{i}" for i in range(len(kinds))])
        assert [row["aggregate_reward_score"] for row in reply] == [1.0, 0.0, 0.0, 0.0, 1.0]
        errors = [
            next(m["value"] for m in row["metrics_list"] if m["name"] == "grader_error")
            for row in reply
        ]
        assert errors == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_a_grader_that_exits_at_import_fails_closed(load_lambda: Load) -> None:
    module = load_lambda(g.Python(name="p", source=SOURCES["exit_at_import"]))
    reply = module.lambda_handler([bedrock_sample("a", "x")], None)
    assert reply[0]["aggregate_reward_score"] == 0.0
    assert module.lambda_handler([bedrock_sample("b", "x")], None)[0]["id"] == "b"


def test_a_timed_out_grader_and_everything_it_started_really_stop(
    load_lambda: Load, tmp_path: Path
) -> None:
    load_lambda(g.Python(name="p", source=SOURCES["ok"]))
    runtime = sys.modules["rlft_grader_engine.lambda_handler"]
    engine = sys.modules["rlft_grader_engine.engine"]
    python = runtime.LambdaPython(timeout_s=1.0, workers=1)
    pids = tmp_path / "pids"
    ticks = tmp_path / "ticks"
    source = (
        "import os, subprocess, threading, time\n"
        "def grade(sample, item):\n"
        f"    child = subprocess.Popen(['sleep', '600'])\n"
        f"    open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "    def tick():\n"
        "        while True:\n"
        f"            open({str(ticks)!r}, 'a').write('.')\n"
        "            time.sleep(0.01)\n"
        "    threading.Thread(target=tick, daemon=True).start()\n"
        "    while True:\n"
        "        time.sleep(0.01)\n"
    )
    spec = {"type": "python", "name": "p", "source": source}
    options = engine.EngineOptions(pool=python)
    result = anyio.run(engine.evaluate, spec, "out", {}, options)
    assert (result.score, result.errors) == (0.0, ("timeout",))
    worker_pid, child_pid = map(int, pids.read_text().split())
    assert not _alive(worker_pid) and not _alive(child_pid)  # killed as a group, and reaped
    size = ticks.stat().st_size
    assert not _running_grader_code()  # nothing runs on in this process either
    ok = anyio.run(engine.evaluate, {**spec, "source": SOURCES["ok"]}, "out", {}, options)
    assert (ok.score, ok.errors) == (1.0, ())  # a fresh worker serves the next call
    assert ticks.stat().st_size == size  # the timed-out grader's writes stopped for good
    python.close()


def test_grader_code_does_not_see_the_lambdas_aws_credentials(
    load_lambda: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "sentinel-token")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    source = (
        "import os\n"
        "def grade(sample, item):\n"
        "    leaked = any('sentinel' in v for v in os.environ.values())\n"
        "    return 0.0 if leaked else (1.0 if os.environ.get('AWS_REGION') else 0.5)\n"
    )
    handler = load_lambda(g.Python(name="p", source=source)).lambda_handler
    assert handler([bedrock_sample("a", "x")], None)[0]["aggregate_reward_score"] == 1.0


LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_text }}",
    reference="{{ item.reference_answer }}",
    operation="eq",
)


def test_only_an_answer_after_the_last_user_turn_is_graded(load_lambda: Load) -> None:
    handler = load_lambda(LABEL).lambda_handler
    few_shot = {
        "id": "few-shot",
        "messages": [
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "3 + 1?"},
        ],
        "reference_answer": "4",  # the few-shot answer would match: it must not be graded
    }
    answered = {
        **few_shot,
        "id": "answered",
        "messages": [*few_shot["messages"], {"role": "assistant", "content": "4"}],
    }
    reply = handler([few_shot, answered], None)
    assert [row["aggregate_reward_score"] for row in reply] == [0.0, 1.0]
    assert [m["value"] for m in reply[0]["metrics_list"] if m["name"] == "grader_error"] == [1.0]


def test_ids_are_never_null_and_the_trajectories_envelope_is_read(load_lambda: Load) -> None:
    handler = load_lambda(LABEL).lambda_handler
    with_task_id = bedrock_sample("x", "42", reference_answer="42")
    del with_task_id["id"]
    with_task_id["task_id"] = "task-7"
    no_id = bedrock_sample("y", "42", reference_answer="42")
    del no_id["id"]
    text_messages = {"id": "t", "messages": "42", "reference_answer": "42"}
    reply = handler({"trajectories": [with_task_id, no_id, "garbage", text_messages]}, None)
    assert_bedrock_reply(reply, ["task-7", "sample-1", "sample-2", "t"])
    assert [row["aggregate_reward_score"] for row in reply] == [1.0, 1.0, 0.0, 0.0]


def test_the_shared_loop_survives_a_base_exception() -> None:
    from rlft.graders._runtime.sync import run_sync

    async def exits() -> Any:
        raise SystemExit(3)

    async def fine() -> int:
        return os.getpid()

    for _ in range(3):
        with pytest.raises(SystemExit):
            run_sync(exits)
        assert run_sync(fine) == os.getpid()


def test_a_memory_bomb_fails_its_sample_not_the_function(
    load_lambda: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")  # as Lambda sets it
    bomb = "def grade(sample, item):\n    x = bytearray(8 << 30)\n    return 1.0\n"
    module = load_lambda(g.Python(name="p", source=bomb))
    assert module._HANDLER.python.memory_mb == 1024 * 3 // 4 // 2
    reply = module.lambda_handler([bedrock_sample("a", "x"), bedrock_sample("b", "x")], None)
    assert [row["aggregate_reward_score"] for row in reply] == [0.0, 0.0]
    runtime = sys.modules["rlft_grader_engine.lambda_handler"]
    engine = sys.modules["rlft_grader_engine.engine"]
    python = runtime.LambdaPython(timeout_s=30, workers=1, memory_mb=256)
    spec = {"type": "python", "name": "p", "source": bomb}
    result = anyio.run(engine.evaluate, spec, "out", {}, engine.EngineOptions(pool=python))
    assert result.errors == ("python_runtime",) and "MemoryError" in (result.reason or "")
    python.close()
