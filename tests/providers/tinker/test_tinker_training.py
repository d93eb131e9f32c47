"""Real training through the official ``tinker`` SDK against ``FakeTinkerServer``: no mocks.

The worker is the real detached process the provider starts; the server trains a real tiny
LoRA model. Each test starts the smallest job that shows its behaviour.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest
from tests.providers.tinker.conftest import (
    SECRET,
    create,
    make_provider,
    metric_steps,
    quickstart_spec,
    rewards,
    wait_until,
)

from rlft._models import JobStatus
from rlft.workers import ErrorRecord, JobDir

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Measured on 2 shared cores (see docs/providers/tinker.md): ~0.5-1 s a step.
QUICKSTART = {
    "max_steps": 60,
    "batch_size": 8,
    "samples_per_prompt": 16,
    "learning_rate": 3e-3,
    "max_completion_tokens": 1,
    "eval_interval": 30,
    "eval_samples": 2,
    "seed": 1,
    # (reward - mean) / std: with the mean alone the policy collapsed onto one label (every
    # answer "billing": train reward 0.25, validation 0.19); normalised, it kept learning.
    "provider_options": {"lora_rank": 8, "advantage": "std"},
}


def _ended(record, events) -> bool:
    return record.status.is_terminal


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_the_reward_rises_on_the_quickstart(provider, server, tmp_path: Path) -> None:
    """GRPO through the SDK learns the quickstart's labels; checkpoints sample; no key leaks."""
    record = await create(provider, quickstart_spec(**QUICKSTART))
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    curve = rewards(events)
    assert len(curve) == QUICKSTART["max_steps"]
    start, end = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    assert start < 0.1 and end > start + 0.15, curve  # chance is ~1/70 words
    valid = [
        (e.metrics.step, e.metrics.valid_reward_mean)
        for e in events
        if e.kind == "metrics" and e.metrics and e.metrics.valid_reward_mean is not None
    ]
    assert [step for step, _ in valid] == [30, 60], "validation runs every eval_interval"
    print(f"quickstart reward: first 10 steps {start:.3f}, last 10 {end:.3f}; valid {valid}")

    checkpoints = await provider.list_checkpoints(record.id)
    assert [c.step for c in checkpoints] == [30, 60]
    assert all(c.model.startswith("tinker://") for c in checkpoints)
    assert record.fine_tuned_model == checkpoints[-1].model
    answers = await provider.generate(
        model=checkpoints[-1].model,
        prompts=[
            [
                {"role": "system", "content": "triage"},
                {"role": "user", "content": "hi my refund now"},
            ]
        ],
        max_tokens=1,
    )
    assert answers[0] in {"billing", "bug", "account", "shipping"}, answers

    # The key went to the worker by environment only: not one file rlft wrote holds it.
    written = _files(provider.home)
    assert any(p.name == "worker.log" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in e.model_dump_json() for e in events)


async def test_pause_and_resume_continue_the_step_count_exactly(provider, server) -> None:
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 12, "eval_interval": 6})
    record = await create(provider, spec)
    await wait_until(provider, record.id, lambda r, e: any(s >= 3 for s in metric_steps(e)))
    paused = await provider.pause_job(record.id)
    assert paused.status is JobStatus.PAUSED
    folder = JobDir(Path(str(paused.raw["folder"])), provider="tinker")
    at = folder.read_state().step
    assert at is not None and 3 <= at < 12
    progress = (folder.root / "progress.json").read_text()
    assert f'"step": {at}' in progress  # the state saved at the exact step paused

    await provider.resume_job(record.id)
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    steps = metric_steps(events)
    assert steps == list(range(1, 13)), steps  # no step twice, none skipped
    resumed = [e for e in events if e.kind == "status" and "resumed at step" in e.message]
    assert resumed and f"resumed at step {at}" in resumed[-1].message
    # The service agrees: the resumed run started from the state saved at that step.
    runs = server.runs()
    assert sorted(server.training_step(run) for run in runs)[-1] == 12
    assert sum(server.optim_steps(run) for run in runs) == 12  # each update applied once


async def test_a_job_stopped_by_a_lost_update_resumes_from_the_saved_state(
    provider, server
) -> None:
    """``connection_lost`` is resumable: the worker that continues starts from the state saved
    on the service, so the update whose answer was lost is discarded, never applied twice.

    The SDK retries a lost answer for minutes before giving up, too long for a test, so the job
    is stopped at a step boundary (pause) and its state then recorded as the worker records a
    lost update; what is tested is that resume accepts it and continues exactly.
    """
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 8, "eval_interval": 4})
    record = await create(provider, spec)
    await wait_until(provider, record.id, lambda r, e: any(s >= 2 for s in metric_steps(e)))
    paused = await provider.pause_job(record.id)
    assert paused.status is JobStatus.PAUSED
    folder = JobDir(Path(str(paused.raw["folder"])), provider="tinker")
    at = folder.read_state().step
    assert at is not None
    folder.update_state(
        status="failed",
        error=ErrorRecord(
            message=f"lost the connection during step {at + 1}'s update", code="connection_lost"
        ),
    )
    assert (await provider.get_job(record.id)).status is JobStatus.FAILED
    await provider.resume_job(record.id)
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert metric_steps(events) == list(range(1, 9))  # from the saved step, none twice
    assert sum(server.optim_steps(run) for run in server.runs()) == 8


async def test_killing_the_worker_fails_the_job_with_its_reason(provider, server) -> None:
    """SIGKILL the worker: the job fails saying so; a resume reloads the last saved state."""
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 12, "eval_interval": 3})
    record = await create(provider, spec)
    await wait_until(provider, record.id, lambda r, e: any(s >= 4 for s in metric_steps(e)))
    folder = JobDir(Path(str(record.raw["folder"])), provider="tinker")
    launcher = folder.read_state().pid
    assert launcher is not None
    children = _children(launcher)
    assert len(children) == 1  # the launcher runs exactly one worker: kill it, not the launcher
    os.kill(children[0], signal.SIGKILL)
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "worker_died"
    assert "SIGKILL" in record.error.message and "resume" in record.error.message
    killed_at = max(metric_steps(events))

    await provider.resume_job(record.id)
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    [note] = [e.message for e in events if "resuming from the state saved at step" in e.message]
    saved = int(note.split("step ")[1].split(":")[0])
    assert saved % 3 == 0 and saved <= killed_at  # the last checkpoint before the kill
    assert metric_steps(events)[-(12 - saved) :] == list(range(saved + 1, 13))


async def test_an_optim_step_whose_answer_is_dropped_is_applied_once(provider, server) -> None:
    """The service applies the update, the connection drops before its answer; the SDK asks
    again under the same sequence id, and the service answers without applying it twice."""
    server.fail_next("optim_step", "drop_response")
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 3, "eval_interval": 3})
    record = await create(provider, spec)
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    [run] = server.runs()
    assert server.requests("optim_step") == 4  # three updates and one repeat
    assert server.optim_steps(run) == 3
    assert metric_steps(events) == [1, 2, 3]


async def test_an_update_applied_during_an_outage_is_applied_once(provider, server) -> None:
    """The service applies an optim_step and goes down before answering; when it is back, the
    SDK's retry (same sequence id) gets the first answer, and the job goes on: one update."""
    server.fail_next("optim_step", "drop_response", then_stop=True)
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 3, "eval_interval": 3})
    record = await create(provider, spec)
    await anyio.to_thread.run_sync(server.wait_until_stopped, 120)
    [run] = server.runs()
    assert server.optim_steps(run) == 1  # applied, and the answer never left
    server.start()  # the outage ends
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert server.optim_steps(run) == 3 and metric_steps(events) == [1, 2, 3]


async def test_a_lost_sampling_connection_is_retried(provider, server) -> None:
    server.fail_next("asample", "refuse", times=2)
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 2, "eval_interval": 2})
    record = await create(provider, spec)
    record, _ = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert server.requests("asample") >= 2 * 8 + 2  # every prompt answered, after two refusals


async def test_an_unknown_model_is_refused_before_any_training_call(
    tmp_path: Path, server, tiny_model
) -> None:
    from rlft.exceptions import UsageError

    provider = make_provider(tmp_path / "home", server, tiny_model)
    spec = quickstart_spec(**QUICKSTART).model_copy(update={"model": "Qwen/Qwen3-8B"})
    with pytest.raises(UsageError) as info:
        await create(provider, spec)
    assert "'Qwen/Qwen3-8B'" in str(info.value) and "tiny" in str(info.value)
    assert server.requests("create_model") == 0
    assert not list((provider.home / "jobs").iterdir())  # no half-made job folder


async def test_python_graders_run_sandboxed_in_the_worker_and_a_broken_one_stops_the_job(
    provider, server
) -> None:
    """The same compiled grader as the local runner: rlft's sandbox, error counters, and the
    grader-health rule, which stops a job whose grader keeps failing."""
    from rlft.graders import Python

    good = Python(
        name="first_word",
        source="def grade(sample, item):\n"
        "    words = sample['output_text'].split()\n"
        "    return float(bool(words) and words[0] == item['label'])\n",
    )
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 2, "eval_interval": 2})
    record = await create(provider, spec.model_copy(update={"grader": good}))
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.SUCCEEDED, record.error
    metrics = [e.metrics for e in events if e.kind == "metrics" and e.metrics]
    assert [m.grader_error_rate for m in metrics] == [0.0, 0.0]
    assert all("first_word" in m.grader_rewards for m in metrics)

    broken = Python(name="broken", source="def grade(sample, item):\n    return item['nope']\n")
    spec = quickstart_spec(**{**QUICKSTART, "max_steps": 20})
    record = await create(provider, spec.model_copy(update={"grader": broken}))
    record, events = await wait_until(provider, record.id, _ended)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "grader_errors"
    rates = [e.metrics.grader_error_rate for e in events if e.kind == "metrics" and e.metrics]
    assert rates == [1.0, 1.0, 1.0]  # the default rule: over 50% for 3 steps
    assert any("KeyError" in e.message for e in events if e.kind == "metrics")
