"""The training worker: ``python -m rlft_providers.local._worker <job folder>``.

The only module (with ``rlft.tiny`` and the ``_callback``, ``_rewards`` and ``_plot`` helpers
it alone imports) that loads torch, transformers and TRL. It runs GRPO for one job, streams
events into the folder, obeys pause/cancel requests between steps, and records how it ended in
``state.json``. Under ``accelerate launch`` every process runs this; only the main one writes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, cast

from rlft.workers import JobDir, checkpoint_problem, utcnow
from rlft.workers.worker import ENDED, WorkerFailure, record_outcome, run_worker
from rlft_providers.local._jobfile import LocalJobFile

__all__ = ["main", "run"]


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _device(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _grpo_kwargs(job: LocalJobFile, folder: JobDir, device: str) -> dict[str, Any]:
    kwargs = dict(job.grpo)
    kwargs["output_dir"] = str(folder.output_dir)
    if device == "cpu":
        # TRL's defaults assume a GPU: GRPOConfig() raises on a CPU-only host without
        # use_cpu, and bf16 autocast is 1.6x slower on the CPU (reference/trl_local.md §2).
        kwargs.setdefault("use_cpu", True)
        kwargs.setdefault("bf16", False)
        kwargs.setdefault("gradient_checkpointing", False)
    return kwargs


def _model_and_tokenizer(
    job: LocalJobFile, folder: JobDir, rows: list[dict[str, Any]], seed: int, device: str, kind: str
) -> Any:
    """Return ``(model, tokenizer or processor)``: a tiny demonstration model, or the named one."""
    if job.tiny and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        # The main process builds and saves the model; the others then load the same folder.
        with PartialState().main_process_first():
            return _load_model(job, folder, rows, seed, device, kind)
    return _load_model(job, folder, rows, seed, device, kind)


def _load_model(
    job: LocalJobFile, folder: JobDir, rows: list[dict[str, Any]], seed: int, device: str, kind: str
) -> Any:
    if kind in ("tiny-vlm", "vlm"):
        return _load_vlm(job, folder, rows, seed, device)
    if job.tiny:
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        if (folder.base_model / "config.json").is_file():  # a resumed job: the same model
            model = AutoModelForCausalLM.from_pretrained(folder.base_model)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(folder.base_model)
            model.name_or_path = str(folder.base_model)
            return model, tokenizer
        from rlft.tiny import build_tiny_model

        model, tokenizer, params = build_tiny_model(rows, folder=folder.base_model, seed=seed)
        _event(
            folder,
            f"using the tiny DEMONSTRATION model ({params:,} parameters, {len(tokenizer)} words "
            "learnt from this dataset): it learns this task only; name a real model for real use",
            level="warning",
        )
        return model, tokenizer

    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(job.model)
    try:
        # fp32 on the CPU: many hub checkpoints are stored in bf16, which trains slowly there
        dtype = "float32" if device == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left")
    except OSError as exc:
        where = (
            "it is not a local folder and not in the Hugging Face cache, and the local runner "
            "runs offline: download it first (`hf download " + name + "`) or set "
            "`offline = false` under [local] in rlft.toml"
            if job.offline
            else "it could not be loaded"
        )
        raise WorkerFailure(f"model {name!r}: {where} ({exc})", code="model_not_found") from exc
    return model, tokenizer


def _load_vlm(
    job: LocalJobFile, folder: JobDir, rows: list[dict[str, Any]], seed: int, device: str
) -> Any:
    """``(model, processor)``: the tiny demonstration VLM, or the named vision-language model."""
    from rlft_providers.local._vision import load_vlm

    if job.tiny:
        if (folder.base_model / "config.json").is_file():  # a resumed job: the same model
            model, processor = load_vlm(str(folder.base_model), dtype="float32")
            model.name_or_path = str(folder.base_model)
            return model, processor
        from rlft.tiny_vlm import IMAGE_SIZE, build_tiny_vlm

        model, processor, params = build_tiny_vlm(rows, folder=folder.base_model, seed=seed)
        _event(
            folder,
            f"using the tiny DEMONSTRATION vision-language model ({params:,} parameters, "
            f"{len(processor.tokenizer)} words learnt from this dataset, images seen at "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} pixels): it learns this task only; name a real "
            "vision-language model for real use",
            level="warning",
        )
        return model, processor
    name = str(job.model)
    try:
        return load_vlm(name, dtype="float32" if device == "cpu" else "auto")
    except OSError as exc:
        where = (
            "it is not a local folder and not in the Hugging Face cache, and the local runner "
            "runs offline: download it first (`hf download " + name + "`) or set "
            "`offline = false` under [local] in rlft.toml"
            if job.offline
            else "it could not be loaded"
        )
        raise WorkerFailure(f"model {name!r}: {where} ({exc})", code="model_not_found") from exc
    except ValueError as exc:
        problem = str(exc).splitlines()[0]
        raise WorkerFailure(
            f"model {name!r} is not a vision-language model ({problem}), but the rows carry "
            "images: name a model that loads with AutoModelForImageTextToText and "
            "AutoProcessor, or remove the images from the dataset",
            code="model_not_vision",
        ) from exc


def _trainer_data(
    rows: list[dict[str, Any]], *, role: str, vision: bool, item_column: str
) -> list[dict[str, Any]]:
    """The rows as TRL's dataset: images read into PIL images on the vision path."""
    if not vision:
        from rlft_providers.local._rewards import trainer_rows

        return trainer_rows(rows)
    from rlft_providers.local._vision import ImageRowError, vision_rows

    try:
        return vision_rows(rows, role=role, item_column=item_column)
    except ImageRowError as exc:
        raise WorkerFailure(str(exc), code=exc.code) from None


def _dataset(rows: list[dict[str, Any]], *, vision: bool) -> Any:
    if vision:
        from rlft_providers.local._vision import trainer_dataset

        return trainer_dataset(rows)
    from datasets import Dataset

    return Dataset.from_list(rows)


def _grader_health(job: LocalJobFile) -> Any:
    if job.grader_guard is None:
        return None
    from rlft.guards import GraderHealth

    threshold, steps = job.grader_guard.get("threshold", 0.5), job.grader_guard.get("steps", 3)
    return GraderHealth(threshold=float(cast(float, threshold)), steps=int(cast(int, steps)))


def _resume_point(folder: JobDir) -> str | None:
    """The last complete checkpoint; damaged ones are moved aside with a warning event.

    A damaged folder newer than the one chosen would be written into again when training
    reaches its step, mixing old and new files: it goes to ``output/.damaged-checkpoint-N``.
    """
    chosen: Path | None = None
    for _, path in folder.checkpoint_folders():
        problem = checkpoint_problem(path)
        if problem is None:
            chosen = path
            continue
        aside = path.with_name(f".damaged-{path.name}-{int(utcnow().timestamp())}")
        if _is_main_process():
            path.rename(aside)
        _event(
            folder,
            f"skipping {path.name}: {problem}; moved it to {aside} and resuming from an earlier "
            "checkpoint",
            level="warning",
        )
    if chosen is None:
        _event(folder, "no complete checkpoint to resume from: training starts over at step 0")
        return None
    return str(chosen)


def _event(
    folder: JobDir,
    message: str,
    *,
    level: str = "info",
    kind: str = "message",
    raw: dict[str, Any] | None = None,
) -> None:
    if _is_main_process():
        folder.append_event(kind=kind, message=message, level=level, raw=raw)


def run(folder: JobDir) -> tuple[str, int | None]:
    """Train the job in ``folder``; return how it ended (succeeded, paused or cancelled) and
    the last step."""
    job = folder.read_job(LocalJobFile)
    state = folder.read_state()
    early = folder.requested()
    if early is not None:  # asked to stop before a single step ran
        return ("cancelled" if early == "cancel" else "paused"), state.step

    import torch

    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]  # lazy exports

    from rlft_providers.local._callback import RunnerCallback
    from rlft_providers.local._plan import image_shape, model_kind
    from rlft_providers.local._rewards import ITEM_COLUMN, reward_functions

    device = _device(job.device)
    kwargs = _grpo_kwargs(job, folder, device)
    try:
        config = GRPOConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        message = f"GRPOConfig refused the settings: {exc}"
        raise WorkerFailure(message, code="hyperparameter") from exc

    train_rows = _read_rows(job.train_file)
    valid_rows = _read_rows(job.validation_file) if job.validation_file else None
    all_rows = train_rows + (valid_rows or [])
    # Rows with images pick the vision-language path (the plan's rule; see _plan.model_kind).
    images = image_shape(row["prompt"] for row in all_rows)
    kind = model_kind(None if job.tiny else job.model, images)
    vision = images is not None
    train_data = _trainer_data(train_rows, role="training", vision=vision, item_column=ITEM_COLUMN)
    valid_data = (
        _trainer_data(valid_rows, role="validation", vision=vision, item_column=ITEM_COLUMN)
        if valid_rows
        else None
    )
    if images is not None:
        _event(
            folder,
            f"{images.images} image(s) in {images.rows} row(s): training a vision-language model",
            raw={"images": images.images, "rows_with_images": images.rows, "kind": kind},
        )
    model, tokenizer = _model_and_tokenizer(job, folder, all_rows, config.seed, device, kind)
    peft_config = None
    if job.lora is not None:
        from peft import LoraConfig

        lora: dict[str, Any] = dict(job.lora)
        peft_config = LoraConfig(task_type="CAUSAL_LM", **lora)

    if job.response_format is not None:
        _event(
            folder,
            "response_format is not enforced by the local runner: sampling is unconstrained "
            "and the grader sees the raw text",
            level="warning",
        )
    rewards = reward_functions(job.grader)
    callback = RunnerCallback(
        folder,
        attempt=state.attempt,
        grader=str(job.grader["name"]),
        health=_grader_health(job),
        tally=rewards[0],
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=cast(Any, rewards),
        args=config,
        train_dataset=_dataset(train_data, vision=vision),
        eval_dataset=_dataset(valid_data, vision=vision) if valid_data else None,
        processing_class=tokenizer,
        callbacks=[callback],
        peft_config=peft_config,
    )
    if folder.requested() == "cancel" or folder.read_state().status == "cancelled":
        return "cancelled", state.step  # cancelled while we loaded: don't start a step
    # Our event log is the record; TRL's PrinterCallback would print every log dict to stdout.
    trainer.remove_callback(PrinterCallback)
    resume = _resume_point(folder) if state.attempt > 1 else None
    if resume is not None and vision and job.lora is None:
        from rlft_providers.local._vision import restore_weights

        restore_weights(model, resume)  # the Trainer's own load misses VLM checkpoints' keys
    trainer.train(resume_from_checkpoint=resume)

    step = trainer.state.global_step
    if callback.unhealthy is not None:
        raise WorkerFailure(callback.unhealthy, code="grader_errors", step=step)
    if _is_main_process() and callback.summary:
        runtime = callback.summary.get("train_runtime", 0.0)
        speed = callback.summary.get("train_steps_per_second", 0.0)
        folder.append_event(
            message=f"trained to step {step} in {runtime:.1f}s ({speed:.2f} steps/s)",
            raw={"train": dict(callback.summary)},
        )
    finished = step >= trainer.state.max_steps
    if callback.stopped == "cancel":
        return "cancelled", step
    if callback.stopped == "pause" and not finished:
        return "paused", step
    if _is_main_process():
        trainer.save_model(str(folder.final_model))
        folder.update_state(fine_tuned_model=str(folder.final_model))
    return "succeeded", step


def _finish(folder: JobDir, outcome: str, step: int | None, error: dict[str, str] | None) -> None:
    """Record the outcome (main process only), after drawing the reward curve."""
    if not _is_main_process():
        return
    if folder.read_state().status in ENDED:
        return  # the provider already recorded an end (a cancel that could not wait for us)
    job = folder.read_job(LocalJobFile)
    if outcome != "cancelled":
        try:
            from rlft_providers.local._plot import write_reward_curve

            path = write_reward_curve(folder, title=job.name or job.id)
            if path is not None:
                folder.append_event(message=f"reward curve: {path}", raw={"path": str(path)})
        except Exception as exc:  # a missing plot must not turn a finished job into a failure
            folder.append_event(level="warning", message=f"could not draw the reward curve: {exc}")
    record_outcome(folder, outcome, step, error)


def main(argv: list[str] | None = None) -> int:
    """Run one job folder; exit 0 when the outcome was recorded, 1 on a failure."""
    return run_worker(
        run, argv, provider="local", module="rlft_providers.local._worker", finish=_finish
    )


if __name__ == "__main__":
    sys.exit(main())
