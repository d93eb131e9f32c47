"""compile(grader, "trl"): a reward function with TRL 1.16's calling convention."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from rlft import graders as g
from rlft.exceptions import UsageError
from rlft.graders._sandbox import SandboxPool

LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
LENGTH = g.Python(
    name="short",
    source="def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < 40 else 0.0\n",
)
TRIAGE = g.Multi(
    name="triage",
    graders={"label": LABEL, "short": LENGTH},
    calculate_output="0.75 * label + 0.25 * short",
)


class Recorder:
    """Stands in for TRL's ``log_metric`` and ``log_extra`` (``GRPOTrainer._calculate_rewards``)."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra.setdefault(column, []).extend(values)


def call_like_trl(fn: Any, completions: list[Any], recorder: Recorder, **columns: list[Any]) -> Any:
    prompts = [[{"role": "user", "content": "classify"}]] * len(completions)
    return fn(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        trainer_state=object(),
        log_extra=recorder.log_extra,
        log_metric=recorder.log_metric,
        **columns,
    )


def test_trl_names_it_after_the_grader_and_treats_it_as_sync() -> None:
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = g.compile(TRIAGE, "trl")
    assert get_callable_name(fn) == "triage"
    assert not is_async_callable(fn)


def test_plain_completions_and_logging(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    recorder = Recorder()
    completions = ['{"label": "billing"}', '{"label": "tech"}', "not json at all", "x" * 50]
    scores = call_like_trl(
        fn,
        completions,
        recorder,
        label=["billing", "billing", "billing", "tech"],
        other=[1, 2, 3, 4],
    )
    assert scores == [1.0, 0.25, 0.0, 0.0]  # the third fails closed (sample_parse)
    assert recorder.metrics["triage/failure_rate"] == [0.5]  # 3rd: not JSON; 4th: not JSON
    assert recorder.metrics["triage/errors/sample_parse"] == [0.5]
    assert recorder.metrics["triage/label"] == [0.25]
    assert recorder.metrics["triage/short"] == [0.75]  # only the 50-char output is long
    column = recorder.extra["triage_error"]
    assert column[:2] == ["", ""] and "not valid JSON" in column[2]
    assert fn.calls == 4 and fn.failures == {"sample_parse": 2}


def test_conversational_completions(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    completions = [
        [{"role": "assistant", "content": '{"label": "a"}'}],
        [{"role": "assistant", "content": '{"label": "b"}'}],
    ]
    assert call_like_trl(fn, completions, Recorder(), label=["a", "a"]) == [1.0, 0.25]


def test_item_column_and_bad_columns() -> None:
    fn = g.compile(LABEL, "trl", item_column="item")
    scores = fn(
        completions=['{"label": "x"}', '{"label": "y"}'], item=[{"label": "x"}, '{"label": "x"}']
    )
    assert scores == [1.0, 0.0]
    with pytest.raises(UsageError, match="has 1 values for 2 completions"):
        g.compile(LABEL, "trl")(completions=["a", "b"], label=["x"])
    with pytest.raises(UsageError, match="item_column 'item' is not a dataset column"):
        fn(completions=["a"], label=["x"])
    with pytest.raises(UsageError, match="completions"):
        fn(prompts=["p"])


def test_called_from_many_threads_at_once(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    results: dict[int, list[float]] = {}

    def worker(index: int) -> None:
        label = "a" if index % 2 else "b"
        results[index] = fn(completions=['{"label": "a"}'] * 5, label=[label] * 5)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: [1.0] * 5 if i % 2 else [0.25] * 5 for i in range(6)}


def test_pickles_for_worker_processes(pool: SandboxPool) -> None:
    fn = g.compile(LABEL, "trl", pool=pool)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.__name__ == "label" and copy(completions=['{"label": "z"}'], label=["z"]) == [1.0]
