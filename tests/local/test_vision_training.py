"""Real vision-language training on the CPU, no mocks of TRL: the tiny VLM learns to name the
colour of an image, its checkpoint names the colour of a new one, and a bad image fails the job
with one line.

One training job per module (the example's data and grader, fewer steps, no validation set).
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.local.conftest import (
    create,
    last_step,
    make_provider,
    metric_steps,
    rewards,
    wait_until,
)
from tests.local.test_vision import EXAMPLE, TEXT, image_part, make_data

import rlft
from rlft._models import Hyperparameters, JobEvent, JobRecord, JobStatus
from rlft._spec import CreateJobRequest, JobSpec
from rlft.datasets import Dataset
from rlft.workers import JobDir, is_alive
from rlft_providers.local._provider import LocalProvider
from rlft_providers.local._vision import is_vlm_folder

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STEPS = 150  # the tiny VLM passes 0.9 by step ~80 (docs/multimodal.md)


@dataclass
class Trained:
    provider: LocalProvider
    spec: JobSpec
    record: JobRecord
    events: list[JobEvent]


def _finished(record: JobRecord, events: list[JobEvent]) -> bool:
    return record.status.is_terminal


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The vision example's job: 150 steps, no validation set (the slowest part is ours)."""
    spec = rlft.load_job_file(EXAMPLE / "job.toml")
    params = {**spec.hyperparameters.model_dump(exclude_defaults=True), "max_steps": STEPS}
    for unused in ("eval_interval", "eval_samples"):
        params.pop(unused, None)
    spec = spec.model_copy(
        update={"hyperparameters": Hyperparameters(**params), "validation": None}
    )
    provider = make_provider(tmp_path_factory.mktemp("vision-home"))

    async def run() -> tuple[JobRecord, list[JobEvent]]:
        record = await create(provider, spec)
        return await wait_until(provider, record.id, _finished)

    record, events = anyio.run(run)
    return Trained(provider=provider, spec=spec, record=record, events=events)


def fresh_prompts(colours: list[str], seed: int) -> list[list[dict[str, Any]]]:
    """Prompts with newly generated images (a seed the training data never used)."""
    module = make_data()
    rng = random.Random(seed)
    return [
        [
            {
                "role": "user",
                "content": [image_part(module.data_url(module.image(c, rng))), TEXT],
            }
        ]
        for c in colours
    ]


async def test_the_tiny_vlm_learns_to_name_colours(trained: Trained) -> None:
    record, events = trained.record, trained.events
    assert record.status is JobStatus.SUCCEEDED, record.error
    messages = [e.message for e in events if e.kind == "message"]
    assert "480 image(s) in 480 row(s): training a vision-language model" in messages
    assert any("tiny DEMONSTRATION vision-language model" in m for m in messages)
    curve = rewards(events)
    steps = sorted(curve)
    assert steps == list(range(1, STEPS + 1))
    first = sum(curve[s] for s in steps[:5]) / 5
    last = sum(curve[s] for s in steps[-10:]) / 10
    assert first < 0.2, first  # near chance: 4 colours among ~20 words (0.11 measured)
    assert last >= 0.9, last


async def test_a_checkpoint_names_the_colour_of_a_new_image(trained: Trained) -> None:
    checkpoints = await trained.provider.list_checkpoints(trained.record.id)
    assert [c.step for c in checkpoints] == [50, 100, 150]
    folder = checkpoints[-1].model
    assert is_vlm_folder(folder)  # the processor is saved beside the weights
    colours = ["red", "yellow", "green", "blue", "blue", "green", "yellow", "red"]
    prompts = fresh_prompts(colours, seed=2026)

    # The sampler `generate` runs, greedy: the most likely answer must be right for each image.
    request = {"model": folder, "prompts": prompts, "max_tokens": 1, "greedy": True}
    done = await anyio.run_process(
        [sys.executable, "-m", "rlft_providers.local._sample"],
        input=json.dumps(request).encode(),
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert json.loads(done.stdout) == colours

    # The provider's own generate (sampled at temperature 1): colour words, mostly right.
    answers = await trained.provider.generate(model=folder, prompts=prompts, max_tokens=1)
    assert set(answers) <= set(make_data().COLOURS), answers
    assert sum(a == c for a, c in zip(answers, colours, strict=True)) >= len(colours) // 2


async def test_a_row_with_an_unreadable_image_fails_the_job_with_one_line(
    tmp_path: Path,
) -> None:
    # rlft's dataset loader refuses such an image before any upload, so the worker meets one
    # only in rows that did not come through it: an uploaded file changed since, or written by
    # another client. Here the job's training file is written by hand in the uploaded format.
    module = make_data()
    good = module.row("red", random.Random(1))
    spec = rlft.load_job_file(EXAMPLE / "job.toml").model_copy(
        update={
            "train": Dataset.from_records([good, good, good, good]),
            "validation": None,
            "hyperparameters": Hyperparameters(max_steps=5, batch_size=2),
        }
    )
    corrupt = image_part("data:image/png;base64,iVBORw0KGgo=")  # a PNG signature, no image
    bad = {"prompt": [{"role": "user", "content": [corrupt, TEXT]}], "colour": "blue"}
    ok = {"prompt": good["messages"], "colour": "red"}
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in (ok, bad, bad, ok)), encoding="utf-8")
    provider = make_provider(tmp_path / "home")
    provider.check_spec(spec)
    record = await provider.create_job(
        CreateJobRequest(
            spec=spec,
            grader_payload=None,
            training_file=str(rows),
            validation_file=None,
            idempotency_key="bad-image",
        )
    )
    failed, _ = await wait_until(provider, record.id, _finished)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "bad_image"
    message = failed.error.message
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("training row 2, messages[0].content[0]: the image/png data URL ")
    assert "is not an image Pillow can read" in message
    assert "(and 1 more row(s) with unreadable images)" in message
    assert message.endswith("fix the image or drop the row, then run the job again")
    folder = Path(str((failed.raw or {})["folder"]))
    assert not (folder / "base_model").exists()  # refused before any model was built
    assert "Traceback" not in (folder / "worker.log").read_text(errors="replace")


def _short_spec(model: str, rows: int = 8) -> Any:
    """The example's job on ``rows`` images for two steps, with a named model."""
    module = make_data()
    return rlft.load_job_file(EXAMPLE / "job.toml").model_copy(
        update={
            "model": model,
            "train": Dataset.from_records(module.rows(rows, seed=7)),
            "validation": None,
            "hyperparameters": Hyperparameters(
                max_steps=2, batch_size=2, samples_per_prompt=4, max_completion_tokens=1
            ),
        }
    )


async def test_a_named_vision_language_model_trains_from_its_folder(tmp_path: Path) -> None:
    from rlft.tiny_vlm import build_tiny_vlm

    # Any folder that loads with AutoModelForImageTextToText/AutoProcessor is a named VLM: here
    # a tiny one, saved first, stands in for a hub model (nothing may be downloaded).
    rows = make_data().rows(8, seed=7)
    build_tiny_vlm([{"prompt": r["messages"]} for r in rows], folder=tmp_path / "vlm", seed=3)
    provider = make_provider(tmp_path / "home")
    record = await create(provider, _short_spec(str(tmp_path / "vlm")))
    done, events = await wait_until(provider, record.id, _finished)
    assert done.status is JobStatus.SUCCEEDED, done.error
    messages = [e.message for e in events if e.kind == "message"]
    assert "8 image(s) in 8 row(s): training a vision-language model" in messages
    assert not any("DEMONSTRATION" in m for m in messages)  # it loaded the folder as named
    assert sorted(rewards(events)) == [1, 2]
    assert done.fine_tuned_model is not None and is_vlm_folder(done.fine_tuned_model)


async def test_a_text_only_model_with_image_rows_fails_naming_the_fix(tmp_path: Path) -> None:
    from rlft.tiny import build_tiny_model

    build_tiny_model([{"text": "what colour"}], folder=tmp_path / "text-model", seed=1)
    provider = make_provider(tmp_path / "home")
    record = await create(provider, _short_spec(str(tmp_path / "text-model")))
    failed, _ = await wait_until(provider, record.id, _finished)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "model_not_vision"
    message = failed.error.message
    assert "\n" not in message
    assert message.startswith(f"model {str(tmp_path / 'text-model')!r} is not a vision-language")
    assert "AutoModelForImageTextToText" in message and "remove the images" in message


async def test_a_paused_vlm_job_resumes_with_the_same_model_and_curve(trained: Trained) -> None:
    # The same job again: on resume the worker reloads the tiny VLM it built (base_model/) and
    # the checkpoint, so the curve goes on as if never paused (the first run is the reference).
    provider = trained.provider
    record = await create(provider, trained.spec)
    job = record.id
    folder = JobDir(Path(str((record.raw or {})["folder"])))
    await wait_until(provider, job, lambda r, e: last_step(e) >= 10)
    paused = await provider.pause_job(job)
    assert paused.status is JobStatus.PAUSED, paused
    at = last_step(await provider.list_events(job))
    await wait_until(provider, job, lambda r, e: not is_alive(folder))
    await provider.resume_job(job)
    _, events = await wait_until(provider, job, lambda r, e: last_step(e) >= at + 5)
    assert any(f"resumed at step {at}" in e.message for e in events)
    await provider.cancel_job(job)
    events = await provider.list_events(job)
    steps = metric_steps(events)
    assert steps == list(range(1, steps[-1] + 1))  # no gap, no repeat across the pause
    assert sum("tiny DEMONSTRATION vision-language" in e.message for e in events) == 1
    original = rewards(trained.events)
    assert rewards(events) == {s: original[s] for s in steps}
