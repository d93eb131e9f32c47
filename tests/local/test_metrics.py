"""TRL log dicts -> StepMetrics, and the job folder's event log. No training here."""

from __future__ import annotations

import json
from pathlib import Path

from rlft._models import StepMetrics
from rlft.workers.jobdir import JobDir, JobState
from rlft_providers.local._metrics import merge_validation, step_metrics

# One log as TRL 1.16 hands it to on_log (keys from a real run), with a multi grader's extras.
TRL_LOG = {
    "loss": 1e-9,
    "grad_norm": 0.43,
    "learning_rate": 0.001,
    "num_tokens": 1792.0,
    "completions/mean_length": 1.0,
    "rewards/triage/mean": 0.25,
    "rewards/triage/std": 0.4,
    "reward": 0.25,
    "reward_std": 0.4,
    "triage/failure_rate": 0.125,
    "triage/errors/sample_parse": 0.125,
    "triage/label": 0.5,
    "triage/why": 0.1,
    "kl": 0.02,
    "entropy": 4.1,
    "step_time": 0.05,
    "epoch": 0.008,
}


def test_trl_log_becomes_neutral_metrics() -> None:
    m = step_metrics(TRL_LOG, step=7, total_steps=200, grader="triage")
    assert (m.step, m.total_steps) == (7, 200)
    assert m.train_reward_mean == 0.25 and m.train_reward_std == 0.4
    assert m.grader_rewards == {"label": 0.5, "why": 0.1, "triage": 0.25}
    assert m.grader_error_rate == 0.125 and m.parse_error_rate == 0.125
    assert m.kl == 0.02 and m.completion_length_mean == 1.0 and m.step_seconds == 0.05
    assert m.tokens == {"total": 1792.0}
    assert m.extra["entropy"] == 4.1 and m.extra["triage/errors/sample_parse"] == 0.125
    assert "reward" not in m.extra


def test_non_numbers_and_nan_are_dropped() -> None:
    m = step_metrics(
        {"reward": float("nan"), "kl": None, "note": "x"}, step=1, total_steps=None, grader="g"
    )
    assert m.train_reward_mean is None and m.kl is None and m.extra == {}


def test_validation_log_merges_into_the_step() -> None:
    train = step_metrics({"reward": 0.5}, step=50, total_steps=100, grader="g")
    merged = merge_validation(train, {"eval_reward": 0.75, "eval_loss": 0.1, "epoch": 1.0})
    assert merged.valid_reward_mean == 0.75 and merged.train_reward_mean == 0.5
    assert merged.extra["eval_loss"] == 0.1 and "epoch" not in merged.extra


def test_event_ids_are_line_numbers_and_partial_lines_wait(tmp_path: Path) -> None:
    folder = JobDir(tmp_path)
    folder.append_event(kind="status", message="created")
    folder.append_event(kind="metrics", metrics=StepMetrics(step=1, train_reward_mean=0.5))
    cursor = folder.read_events()
    assert [n for n, _ in cursor.events] == [1, 2]
    assert cursor.events[1][1]["metrics"] == {"step": 1, "train_reward_mean": 0.5}
    with folder.events_file.open("a") as fh:  # a writer caught mid-line
        fh.write('{"kind": "mess')
    cursor = folder.read_events(cursor)
    assert len(cursor.events) == 2
    with folder.events_file.open("a") as fh:
        fh.write('age", "message": "done"}\n')
    cursor = folder.read_events(cursor)
    assert [n for n, _ in cursor.events] == [1, 2, 3]
    assert cursor.events[2][1] == {"kind": "message", "message": "done"}


def test_control_requests_cancel_beats_pause(tmp_path: Path) -> None:
    folder = JobDir(tmp_path)
    assert folder.requested() is None
    folder.request("cancel")
    folder.request("pause")  # too late: cancel stands
    assert folder.requested() == "cancel"
    folder.clear_request()
    folder.control_file.write_text("{not json")
    assert folder.requested() is None


def test_state_updates_validate(tmp_path: Path) -> None:
    folder = JobDir(tmp_path)
    folder.write_state(JobState(status="pending"))
    state = folder.update_state(status="failed", error={"message": "boom", "code": "x"})
    assert state.error is not None and state.error.message == "boom"
    assert json.loads(folder.state_file.read_text())["status"] == "failed"


def test_a_sub_graders_counters_are_not_taken_for_rewards() -> None:
    metrics = step_metrics(
        {"triage/why": 0.5, "triage/why/errors/python_runtime": 0.25, "triage/failure_rate": 0.25},
        step=1,
        total_steps=2,
        grader="triage",
    )
    assert metrics.grader_rewards == {"why": 0.5}
    assert metrics.extra == {"triage/why/errors/python_runtime": 0.25}
    assert metrics.grader_error_rate == 0.25
