"""Real training on the CPU, no mocks of TRL: the quickstart, pause/resume, cancel, failures.

The quickstart runs once per module (as a user runs it, in a subprocess) and most tests read
that one job. Each other test starts the smallest job that shows its behaviour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from tests.local.conftest import (
    QUICKSTART,
    ROOT,
    create,
    last_step,
    make_provider,
    metric_steps,
    quickstart_spec,
    rewards,
    wait_until,
)

from rlft._models import JobEvent, JobStatus
from rlft.graders import from_openai
from rlft.workers.jobdir import JobDir
from rlft.workers.lock import is_alive
from rlft_providers.local._provider import LocalProvider

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@dataclass
class QuickstartRun:
    home: Path
    job_id: str
    output: str

    @property
    def provider(self) -> LocalProvider:
        return make_provider(self.home / "local")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    """``python examples/quickstart/quickstart.py``, run from the repository root."""
    home = tmp_path_factory.mktemp("quickstart-home")
    env = {**os.environ, "RLFT_HOME": str(home), "COLUMNS": "200"}
    env.pop("RLFT_PROVIDER", None)
    done = subprocess.run(
        [sys.executable, "examples/quickstart/quickstart.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = list((home / "local" / "jobs").iterdir())
    assert len(jobs) == 1, jobs
    return QuickstartRun(home=home, job_id=jobs[0].name, output=done.stdout)


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the quickstart -----------------------------------------------------------------------------


async def test_quickstart_reward_rises_and_it_says_where_things_are(
    quickstart: QuickstartRun,
) -> None:
    provider = quickstart.provider
    record = await provider.get_job(quickstart.job_id)
    assert record.status is JobStatus.SUCCEEDED and record.model == "rlft/tiny"
    curve = rewards(await provider.list_events(quickstart.job_id))
    steps = sorted(curve)
    first = sum(curve[s] for s in steps[:10]) / 10
    last = sum(curve[s] for s in steps[-10:]) / 10
    assert first < 0.1, first
    assert last >= 0.9, last
    folder = Path(str((record.raw or {})["folder"]))
    assert record.fine_tuned_model == str(folder / "final")
    assert _png(folder / "reward_curve.png")
    out = quickstart.output
    assert f"-> {last:.2f} (last 10 steps)" in out
    assert f"reward curve: {folder / 'reward_curve.png'}" in out
    assert f"checkpoints:  {folder / 'output'}" in out
    assert "DEMONSTRATION model" in out  # the log says it is a demonstration model


async def test_events_are_ordered_normalised_and_resumable(quickstart: QuickstartRun) -> None:
    provider = quickstart.provider
    events = await provider.list_events(quickstart.job_id)
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert metric_steps(events) == list(range(1, 201))  # one per step, none repeated
    metrics = [e.metrics for e in events if e.kind == "metrics" and e.metrics]
    for m in metrics:
        assert m.total_steps == 200
        assert m.train_reward_mean is not None and m.train_reward_std is not None
        assert m.grader_rewards["label"] == m.train_reward_mean
        assert m.grader_error_rate == 0.0
        assert m.completion_length_mean == 1.0  # max_completion_tokens = 1
        assert m.step_seconds is not None and m.step_seconds > 0
        assert m.kl is None  # beta = 0: TRL loads no reference model and logs no KL
    validated = [m.step for m in metrics if m.valid_reward_mean is not None]
    assert validated == [50, 100, 150, 200]  # eval_interval = 50, the same grader
    statuses = [e.raw["status"] for e in events if e.kind == "status" and e.raw]
    assert statuses == ["pending", "running", "succeeded"]
    assert await provider.list_events(quickstart.job_id, after=ids[-1]) == []
    tail = await provider.list_events(quickstart.job_id, after=ids[-4])
    assert [e.id for e in tail] == ids[-3:]


async def test_checkpoints_carry_metrics_and_reload_offline(quickstart: QuickstartRun) -> None:
    provider = quickstart.provider
    checkpoints = await provider.list_checkpoints(quickstart.job_id)
    assert [c.step for c in checkpoints] == [50, 100, 150, 200]
    for c in checkpoints:
        assert c.metrics.step == c.step and c.metrics.valid_reward_mean is not None
        assert c.job_id == quickstart.job_id and c.model.endswith(f"checkpoint-{c.step}")
    accuracy = await anyio.to_thread.run_sync(_greedy_accuracy, Path(checkpoints[-1].model))
    assert accuracy >= 0.9, accuracy
    first = await anyio.to_thread.run_sync(_greedy_accuracy, Path(checkpoints[0].model))
    assert first < accuracy  # the later checkpoint really learnt more


def _greedy_accuracy(folder: Path) -> float:
    """Load a checkpoint as any user would, answer the validation prompts, grade the answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlft.datasets import Dataset

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    grader = from_openai(
        {"type": "string_check", "name": "label", "input": "{{ sample.output_text }}",
         "reference": "{{ item.label }}", "operation": "eq"}
    )  # fmt: skip
    examples = list(Dataset.from_jsonl(QUICKSTART / "data" / "valid.jsonl"))
    prompts = [
        tokenizer.apply_chat_template(e.messages, tokenize=False, add_generation_prompt=True)
        for e in examples
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=1, do_sample=False)
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    answers = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    async def score() -> list[float]:
        pairs = zip(answers, examples, strict=True)
        return [(await grader.grade(answer, e.item)).score for answer, e in pairs]

    scores = anyio.run(score)
    return sum(scores) / len(scores)


# --- lifecycle ----------------------------------------------------------------------------------


async def test_pause_resume_continues_exactly_and_cancel_stops_promptly(
    quickstart: QuickstartRun,
) -> None:
    # Waits are on what the job records, never on the clock: stop_timeout only bounds a wait
    # (a loaded machine must not turn a slow step boundary into a kill or a "pausing").
    provider = make_provider(quickstart.home / "local", stop_timeout=600)  # reuses the upload
    record = await create(provider, quickstart_spec())  # the quickstart's job, run again
    job = record.id
    folder = JobDir(Path(str((record.raw or {})["folder"])))
    await wait_until(provider, job, lambda r, e: last_step(e) >= 15)

    paused = await provider.pause_job(job)
    assert paused.status is JobStatus.PAUSED, paused
    events = await provider.list_events(job)
    at = last_step(events)
    assert [c.step for c in await provider.list_checkpoints(job)] == [at]  # saved on pause
    assert _png(folder.root / "reward_curve.png")
    assert any("pause requested" in e.message for e in events)
    await wait_until(provider, job, lambda r, e: not is_alive(folder))  # the worker exited
    assert last_step(await provider.list_events(job)) == at  # really stopped

    resumed = await provider.resume_job(job)
    assert resumed.status in (JobStatus.PENDING, JobStatus.RUNNING)
    _, events = await wait_until(provider, job, lambda r, e: last_step(e) >= at + 10)
    assert any(f"resumed at step {at}" in e.message for e in events)

    cancelled = await provider.cancel_job(job)
    assert cancelled.status is JobStatus.CANCELLED
    events = await provider.list_events(job)
    assert not any("killed" in e.message for e in events)  # stopped at a step boundary
    steps = metric_steps(events)
    assert steps == list(range(1, steps[-1] + 1))  # no gap, no repeat across the pause
    assert steps[-1] < 200

    # Resuming restores the optimizer, scheduler and RNG: the curve is the uninterrupted one.
    original = rewards(await quickstart.provider.list_events(quickstart.job_id))
    assert rewards(events) == {s: original[s] for s in steps}
    statuses = [e.raw["status"] for e in events if e.kind == "status" and e.raw]
    assert statuses == ["pending", "running", "paused", "pending", "running", "cancelled"]


async def test_a_grader_that_always_fails_stops_the_job_even_unwatched(tmp_path: Path) -> None:
    # The caller creates the job and is then killed: nobody watches, and yet the job must not
    # train on failed grades in silence. The worker applies the grader-health rule itself.
    caller = textwrap.dedent(
        f"""
        import anyio, os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from rlft.graders import Python
        from tests.local.conftest import create, make_provider, quickstart_spec

        async def main():
            source = "def grade(sample, item):\\n    raise ValueError('always fails')\\n"
            spec = quickstart_spec(max_steps=50, eval_interval=None, eval_samples=None)
            spec = spec.model_copy(update={{
                "validation": None, "grader": Python(name="fail", source=source)}})
            record = await create(make_provider({str(tmp_path)!r}), spec)
            print(record.id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    with anyio.fail_after(300):
        done = await anyio.run_process([sys.executable, "-c", caller], check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    job = done.stdout.decode().split()[0]
    provider = make_provider(tmp_path)
    record, events = await wait_until(provider, job, lambda r, e: r.status.is_terminal)
    assert record.status is JobStatus.FAILED, record
    assert record.error is not None and record.error.code == "grader_errors"
    reason = record.error.message
    assert "grader 'fail' failed on 100% of grades for 3 steps in a row" in reason, reason
    assert "top error python_runtime (100% of grades)" in reason
    assert "always fails" in reason  # the grader's own error, quoted
    metrics = [e for e in events if e.kind == "metrics" and e.metrics]
    assert [e.metrics.step for e in metrics if e.metrics] == [1, 2, 3]  # stopped at once
    for event in metrics:
        assert event.metrics is not None
        assert event.metrics.train_reward_mean == 0.0
        assert event.metrics.grader_error_rate == 1.0
        assert event.metrics.extra["fail/errors/python_runtime"] == 1.0
        assert event.level == "warning" and "grader errors 100%" in event.message
        assert event.raw and "always fails" in str(event.raw["grader_error"])
    assert events[-1].kind == "status" and events[-1].level == "error"
    assert "grader 'fail' failed" in events[-1].message
    assert [c.step for c in await provider.list_checkpoints(job)] == [3]  # kept, resumable


async def test_a_killed_worker_fails_with_the_evidence_and_resumes_from_a_complete_checkpoint(
    tmp_path: Path,
) -> None:
    provider = make_provider(tmp_path, stop_timeout=600)
    spec = quickstart_spec(
        max_steps=1000, eval_interval=None, eval_samples=None, provider_options={"save_steps": 2}
    )
    record = await create(provider, spec.model_copy(update={"validation": None}))
    folder = JobDir(tmp_path / "jobs" / record.id)
    await wait_until(provider, record.id, lambda r, e: checkpoint_steps(e)[-1:] >= [6])
    workers = _children(folder.read_state().pid or 0)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer does; here, we did
    failed, events = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "worker_died"
    message = failed.error.message
    assert "killed by SIGKILL, not by the out-of-memory killer" in message, message
    assert (failed.raw or {})["exit_code"] == -signal.SIGKILL
    assert (failed.raw or {})["signal"] == "SIGKILL"
    assert (failed.raw or {})["oom_killed"] is False  # the kernel's counters say so
    assert events[-1].kind == "status" and "SIGKILL" in events[-1].message
    before, seen = rewards(events), len(events)
    saved = checkpoint_steps(events)
    assert f"rlft jobs resume {record.id}" in message and f"checkpoint-{saved[-1]}" in message

    # The crash left the newest checkpoint's weights cut short, and a save half done.
    last, previous = saved[-1], saved[-2]
    weights = folder.output_dir / f"checkpoint-{last}" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    partial = folder.output_dir / f"checkpoint-{last + 1}"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    listed = [c.step for c in await provider.list_checkpoints(record.id)]
    assert listed == saved[:-1]  # neither the truncated nor the partial one

    resumed = await provider.resume_job(record.id)
    assert resumed.status in (JobStatus.PENDING, JobStatus.RUNNING)
    # Steps of the resumed run only: on a busy machine the killed run may already have logged
    # steps past `last + 2` (it trained on while its next checkpoint was being saved).
    _, events = await wait_until(provider, record.id, lambda r, e: last_step(e[seen:]) >= last + 2)
    await provider.cancel_job(record.id)
    messages = [e.message for e in events]
    assert any("resuming after the worker died" in m for m in messages)
    assert any(f"skipping checkpoint-{last}: model.safetensors is 100 bytes" in m for m in messages)
    assert any(f"skipping checkpoint-{last + 1}: it was never completed" in m for m in messages)
    assert any(f"resumed at step {previous}" in m for m in messages)
    # The steps after the checkpoint ran again, from its exact state: the same rewards.
    again = [
        e.metrics for e in events[seen:] if e.kind == "metrics" and e.metrics and e.metrics.step
    ]
    assert again and again[0].step == previous + 1
    for metrics in again:
        if metrics.step in before:
            assert metrics.train_reward_mean == before[metrics.step]


def checkpoint_steps(events: list[JobEvent]) -> list[int]:
    return [int(str(e.raw["step"])) for e in events if e.kind == "checkpoint" and e.raw]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_accelerate_launch_runs_the_same_worker(tmp_path: Path) -> None:
    provider = make_provider(tmp_path)
    spec = quickstart_spec(
        max_steps=3,
        eval_interval=None,
        eval_samples=None,
        provider_options={"accelerate": {"num_processes": 1, "mixed_precision": "no"}},
    )
    record = await create(provider, spec.model_copy(update={"validation": None}))
    job = JobDir(tmp_path / "jobs" / record.id).read_job()
    assert job.command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    folder = str(tmp_path / "jobs" / record.id)
    assert job.command[-3:] == ["-m", "rlft_providers.local._worker", folder]
    done, events = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert metric_steps(events) == [1, 2, 3]


async def test_a_model_folder_trains_further_with_lora(quickstart: QuickstartRun) -> None:
    provider = quickstart.provider
    base = (await provider.get_job(quickstart.job_id)).fine_tuned_model
    assert base is not None
    spec = quickstart_spec(
        max_steps=2,
        eval_interval=None,
        eval_samples=None,
        provider_options={"lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}},
    )  # a named model: loaded from its folder, offline, not rebuilt
    spec = spec.model_copy(update={"model": base, "validation": None})
    record = await create(provider, spec)
    done, events = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.model == base
    assert not any("DEMONSTRATION" in e.message for e in events)
    checkpoint = (await provider.list_checkpoints(record.id))[-1]
    accuracy = await anyio.to_thread.run_sync(_greedy_accuracy, Path(checkpoint.model))
    assert accuracy >= 0.9  # base + adapter reload offline, and still answer well


# --- preflight sampling -------------------------------------------------------------------------


async def test_generate_samples_a_trained_model_in_a_subprocess(quickstart: QuickstartRun) -> None:
    import json

    provider = quickstart.provider
    record = await provider.get_job(quickstart.job_id)
    rows = [
        json.loads(line)
        for line in (ROOT / "examples/quickstart/data/valid.jsonl").read_text().splitlines()[:8]
    ]
    answers = await provider.generate(
        model=record.fine_tuned_model, prompts=[row["messages"] for row in rows], max_tokens=1
    )
    assert len(answers) == len(rows)
    correct = sum(answer == row["label"] for answer, row in zip(answers, rows, strict=True))
    assert correct >= 6, (answers, [row["label"] for row in rows])  # trained: ~98% right


async def test_generate_refuses_the_tiny_model_with_the_reason(tmp_path: Path) -> None:
    from rlft.exceptions import CapabilityError

    provider = make_provider(tmp_path)
    with pytest.raises(CapabilityError, match="no base model to sample"):
        await provider.generate(model=None, prompts=[[{"role": "user", "content": "hi"}]])


async def test_two_processes_train_and_pause_resume_cancel_reach_both(tmp_path: Path) -> None:
    # A real 2-process DDP run on the CPU (gloo): accelerate's torchrun launcher, 2 ranks.
    provider = make_provider(tmp_path, stop_timeout=600)
    spec = quickstart_spec(
        max_steps=200,
        eval_interval=None,
        eval_samples=None,
        provider_options={"accelerate": {"num_processes": 2}},
    )
    record = await create(provider, spec.model_copy(update={"validation": None}))
    folder = JobDir(tmp_path / "jobs" / record.id)
    assert "--multi_gpu" in folder.read_job().command  # else accelerate starts one process
    await wait_until(provider, record.id, lambda r, e: last_step(e) >= 10)
    workers = _descendants(folder.read_state().pid or 0, "rlft_providers.local._worker")
    assert len(workers) == 2, workers  # both ranks are running

    paused = await provider.pause_job(record.id)
    assert paused.status is JobStatus.PAUSED, paused
    at = last_step(await provider.list_events(record.id))
    await wait_until(provider, record.id, lambda r, e: not is_alive(folder))
    assert not any(_exists(pid) for pid in workers)  # every rank exited, none hung
    assert [c.step for c in await provider.list_checkpoints(record.id)] == [at]  # one, complete
    saved = sorted(p.name for p in folder.output_dir.iterdir() if "checkpoint" in p.name)
    assert saved == [f"checkpoint-{at}"]  # rank 0 wrote it, and nobody wrote another

    await provider.resume_job(record.id)
    _, events = await wait_until(provider, record.id, lambda r, e: last_step(e) >= 70)
    cancelled = await provider.cancel_job(record.id)
    assert cancelled.status is JobStatus.CANCELLED
    await wait_until(provider, record.id, lambda r, e: not is_alive(folder))
    events = await provider.list_events(record.id)
    assert not any("killed" in e.message for e in events)  # both stopped at a step boundary
    running = [e.message for e in events if e.message.startswith("running")]
    assert running == [
        "running: 200 steps on 2 processes",
        f"running (resumed at step {at}): 200 steps on 2 processes",
    ]
    steps = metric_steps(events)
    assert steps == list(range(1, steps[-1] + 1))  # no gap, no repeat: the ranks agreed
    curve = rewards(events)
    first = sum(curve[s] for s in steps[:10]) / 10
    last = sum(curve[s] for s in steps[-10:]) / 10
    assert last > first + 0.15, (first, last)  # it really trains


def _descendants(pid: int, marker: str) -> list[int]:
    """Processes under ``pid`` whose command line contains ``marker``."""
    found, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        frontier += children
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline and b"accelerate" not in cmdline:
                found.append(child)
    return found


def _exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
