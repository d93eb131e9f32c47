"""Graders that never wait are scored in TRL's own thread; the rest go through the event loop."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.graders.formats import trl as trl_format

STRING = g.StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)
MULTI = g.Multi(
    name="both",
    graders={
        "label": STRING,
        "close": g.TextSimilarity(
            name="close",
            input="{{ sample.output_text }}",
            reference="{{ item.label }}",
            evaluation_metric="fuzzy_match",
        ),
    },
    calculate_output="0.5 * label + 0.5 * close",
)


@pytest.mark.parametrize("grader", [STRING, MULTI], ids=["string_check", "multi"])
def test_pure_graders_never_use_the_event_loop(
    grader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loop(*args: Any) -> Any:
        raise AssertionError("a grader that never waits must not hop to the event loop")

    monkeypatch.setattr(trl_format, "run_sync", no_loop)
    reward = g.compile(grader, "trl")
    scores = reward(
        prompts=["p", "p"], completions=["billing", "bug"], label=["billing", "billing"]
    )
    assert scores[0] == 1.0 and scores[1] < 1.0


def test_inline_scores_equal_the_engine() -> None:
    reward = g.compile(MULTI, "trl")
    samples = ["billing", "bill", "shipping", ""]
    inline = reward(prompts=["p"] * 4, completions=samples, label=["billing"] * 4)
    results = anyio.run(g.grade_many, MULTI, samples, [{"label": "billing"}] * 4)
    assert inline == [result.score for result in results]


PYTHON = g.Python(name="py", source="def grade(sample, item):\n    return 1.0\n")


@pytest.mark.parametrize(
    ("grader", "hops"),
    [
        (PYTHON, []),  # one blocking batch from TRL's thread: no event-loop hop
        (g.Multi(name="m", graders={"py": PYTHON}, calculate_output="py"), [1]),
    ],
    ids=["python", "multi-with-python"],
)
def test_python_graders_block_the_trl_thread_once(
    grader: Any, hops: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = trl_format.run_sync

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(trl_format, "run_sync", counting)
    reward = g.compile(grader, "trl")
    assert reward(prompts=["p"] * 3, completions=["x"] * 3, label=["y"] * 3) == [1.0] * 3
    assert calls == hops
