"""Defaults that learn: tasks the tiny model's recipe was not tuned on, with only ``epochs`` set.

Each task is generated here (a label, a parity, a short extraction), trained for real on the
CPU, and must end with a mean reward of at least 0.9 over its last 10 steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.local.conftest import create, make_provider, rewards, wait_until

from rlft._models import Hyperparameters, JobStatus
from rlft._spec import JobSpec
from rlft.datasets import Dataset
from rlft.graders import Python, from_openai

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROWS = 400  # 8 prompts per step: 50 steps an epoch


def _sentiment(rng: random.Random) -> tuple[str, dict[str, Any]]:
    good, bad = ["great", "lovely", "superb", "fun"], ["awful", "boring", "dull", "bad"]
    filler = ["the", "film", "was", "really", "plot", "and", "acting", "quite", "honestly"]
    label = rng.choice(["positive", "negative"])
    words = rng.sample(filler, 4) + [rng.choice(good if label == "positive" else bad)]
    rng.shuffle(words)
    return "review : " + " ".join(words), {"label": label}


def _parity(rng: random.Random) -> tuple[str, dict[str, Any]]:
    number = rng.randrange(40)
    return f"is {number} even or odd", {"answer": "even" if number % 2 == 0 else "odd"}


def _city(rng: random.Random) -> tuple[str, dict[str, Any]]:
    cities = ["paris", "rome", "oslo", "cairo", "tokyo", "lima", "quito", "dakar"]
    city = rng.choice(cities)
    order = rng.randrange(10, 30)
    day = rng.choice(["monday", "friday", "sunday"])
    text = rng.choice(
        [f"order {order} ships to {city} on {day}", f"on {day} send order {order} to {city}"]
    )
    return text, {"city": city, "order": str(order)}


def _rows(make: Callable[[random.Random], tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for _ in range(ROWS):
        text, item = make(rng)
        rows.append({"messages": [{"role": "user", "content": text}], **item})
    return rows


def _dataset(make: Callable[[random.Random], tuple[str, dict[str, Any]]], system: str) -> Dataset:
    rows = _rows(make)
    for row in rows:
        row["messages"].insert(0, {"role": "system", "content": system})
    return Dataset.from_records(rows)


FIRST_WORD = (
    "def grade(sample, item):\n"
    "    words = (sample.get('output_text') or '').split()\n"
    "    return 1.0 if words[:1] == [item['answer']] else 0.0\n"
)
STARTS_WITH = (
    "def grade(sample, item):\n"
    "    words, city = (sample.get('output_text') or '').split(), item['city'].split()\n"
    "    return 1.0 if words[: len(city)] == city else 0.0\n"
)


def _task(name: str) -> tuple[Dataset, Any, int]:
    """(dataset, grader, the completion length the plan must choose)."""
    if name == "label":
        grader = from_openai(
            {"type": "string_check", "name": "label", "input": "{{ sample.output_text }}",
             "reference": "{{ item.label }}", "operation": "eq"}
        )  # fmt: skip
        return _dataset(_sentiment, "sentiment"), grader, 1
    if name == "parity":
        return _dataset(_parity, "parity"), Python(name="first_word", source=FIRST_WORD), 1
    # The answer's words must open the completion (two-word answers: docs/providers/local.md).
    grader = Python(name="city", source=STARTS_WITH)
    return _dataset(_city, "extract the city"), grader, 1


@pytest.mark.parametrize(("task", "epochs"), [("label", 4), ("parity", 4), ("extraction", 4)])
async def test_only_epochs_set_learns_a_new_task(task: str, epochs: int, tmp_path: Path) -> None:
    dataset, grader, length = _task(task)
    spec = JobSpec(
        model=None,
        train=dataset,
        grader=grader,
        hyperparameters=Hyperparameters(epochs=epochs, seed=1),
    )
    provider = make_provider(tmp_path)
    record = await create(provider, spec)
    done, events = await wait_until(provider, record.id, lambda r, e: r.status.is_terminal)
    assert done.status is JobStatus.SUCCEEDED, done.error
    chosen = [e for e in events if e.message.startswith("settings chosen from the data")]
    assert len(chosen) == 1, [e.message for e in events]
    assert f"max_completion_length={length} (the longest reference answer" in chosen[0].message
    curve = rewards(events)
    steps = sorted(curve)
    assert len(steps) == epochs * ROWS // 8  # 50 steps an epoch
    last = sum(curve[s] for s in steps[-10:]) / 10
    assert last >= 0.9, (task, last, [round(curve[s], 2) for s in steps[::20]])


async def test_rlft_run_prints_the_settings_it_chose_and_why(tmp_path: Path) -> None:
    import json
    import os
    import sys

    from rlft.workers.jobdir import JobDir
    from rlft.workers.lock import is_alive

    rows = _rows(_parity)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "grader.json").write_text(
        json.dumps({"type": "python", "name": "first_word", "source": FIRST_WORD})
    )
    (tmp_path / "job.toml").write_text(
        'train = "train.jsonl"\ngrader = "grader.json"\n[hyperparameters]\nepochs = 1\n'
    )
    home = tmp_path / "home"
    env = {**os.environ, "RLFT_HOME": str(home), "COLUMNS": "200"}
    env.pop("RLFT_PROVIDER", None)
    command = [sys.executable, "-m", "rlft", "run", str(tmp_path / "job.toml"), "--detach"]
    with anyio.fail_after(300):
        done = await anyio.run_process(command, env=env, check=False)
    stdout = done.stdout.decode()
    assert done.returncode == 0, stdout + done.stderr.decode()
    lines = stdout.splitlines()
    created = next(i for i, line in enumerate(lines) if line.startswith("created job"))
    chosen = lines[created + 1]
    assert chosen.startswith("settings chosen from the data: max_completion_length=1 "), chosen
    assert "the longest reference answer (answer) is 1 token(s)" in chosen
    # The run was only for the line: stop the worker it started.
    provider = make_provider(home / "local", stop_timeout=600)
    (job_id,) = [p.name for p in (home / "local" / "jobs").iterdir()]
    await provider.cancel_job(job_id)
    await wait_until(
        provider, job_id, lambda r, e: not is_alive(JobDir(home / "local" / "jobs" / job_id))
    )
