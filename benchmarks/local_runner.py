"""Steps per second through rlft's local runner vs the same GRPOTrainer run directly.

    python benchmarks/local_runner.py [--steps 100] [--rounds 3]

Both sides train the same tiny Llama (rlft's recipe, one torch thread as the runner uses for
it) on the quickstart data with the same ``GRPOConfig``, each in a fresh process, rotating the
order each round so background load hits all sides alike. Speed is measured two ways over the
training loop only (imports and the model build excluded): TRL's ``train_steps_per_second``
(wall clock) and steps per CPU-second of the training process, which other load on a shared
machine distorts much less. The direct side runs with a hand-written reward function (what you
would write without rlft) and, separately, with rlft's compiled grader, so the runner's own
overhead and the grading engine's show apart. The goal is rlft / direct >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
GRADER = {
    "type": "string_check",
    "name": "label",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.label }}",
    "operation": "eq",
}


def hyperparameters(steps: int) -> dict[str, Any]:
    return {
        "max_steps": steps,
        "batch_size": 8,
        "samples_per_prompt": 16,
        "learning_rate": 1e-3,
        "max_completion_tokens": 1,
        "seed": 1,
    }


# --- the direct side: a plain TRL script ------------------------------------------------------


def direct(steps: int, reward: str, out: Path) -> dict[str, float]:
    """Train with GRPOTrainer directly: the same model recipe and GRPOConfig, no rlft runner."""
    started = time.monotonic()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlft._models import Hyperparameters
    from rlft.tiny import build_tiny_model
    from rlft_providers.local._plan import plan_training
    from rlft_providers.local._rewards import ITEM_COLUMN, reward_functions, trainer_rows

    torch.set_num_threads(1)  # what the runner does for the tiny model
    rows = [json.loads(line) for line in (QUICKSTART / "data" / "train.jsonl").open()]
    rows = [{"prompt": r["messages"], "label": r["label"]} for r in rows]
    plan = plan_training(
        Hyperparameters(**hyperparameters(steps)),
        model=None,
        train_rows=len(rows),
        has_validation=False,
    )
    kwargs = {**plan.grpo, "save_strategy": "no"}  # as the rlft side sets it
    config = GRPOConfig(**kwargs, output_dir=str(out), use_cpu=True, bf16=False)
    model, tokenizer, _ = build_tiny_model(rows, folder=out / "base", seed=config.seed)
    if reward == "rlft":  # rlft's compiled grader, on rlft's row format
        funcs = reward_functions(GRADER)
        dataset = Dataset.from_list(trainer_rows(rows))
        assert ITEM_COLUMN in dataset.column_names
    else:  # what you would write by hand

        def label(completions: list[Any], label: list[str], **_: Any) -> list[float]:
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return [1.0 if t == want else 0.0 for t, want in zip(texts, label, strict=True)]

        funcs = [label]
        dataset = Dataset.from_list(rows)

    class CpuClock(TrainerCallback):  # measures as the runner's callback does
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            self.start = time.process_time()

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            self.seconds = time.process_time() - self.start

    clock = CpuClock()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    return {
        "steps_per_second": result.metrics["train_steps_per_second"],
        "steps_per_cpu_second": steps / clock.seconds,
        "wall_seconds": time.monotonic() - started,
        "final_reward": trainer.state.log_history[-2].get("reward", float("nan")),
    }


# --- the rlft side: the local provider ---------------------------------------------------------


def through_rlft(steps: int, home: Path) -> dict[str, float]:
    """Create the job through LocalProvider and wait for it, as a user of rlft would."""
    import anyio

    from rlft._models import Hyperparameters
    from rlft._spec import CreateJobRequest, JobSpec
    from rlft.datasets import Dataset
    from rlft.graders import from_openai
    from rlft.workers.jobdir import JobDir
    from rlft_providers.local._provider import LocalProvider
    from rlft_providers.local._settings import LocalSettings

    async def run() -> dict[str, float]:
        started = time.monotonic()
        provider = LocalProvider(settings=LocalSettings(home=home))
        train = Dataset.from_jsonl(QUICKSTART / "data" / "train.jsonl")
        spec = JobSpec(
            train=train,
            grader=from_openai(GRADER),
            hyperparameters=Hyperparameters(
                **hyperparameters(steps), provider_options={"save_strategy": "no"}
            ),
        )
        provider.check_spec(spec)
        request = CreateJobRequest(
            spec=spec,
            grader_payload=None,
            training_file=await provider.upload_dataset(train, role="train"),
            validation_file=None,
            idempotency_key=os.urandom(8).hex(),
        )
        record = await provider.create_job(request)
        while not record.status.is_terminal:
            await anyio.sleep(0.5)  # what Job.wait() polls at (Capabilities.poll_interval)
            record = await provider.get_job(record.id)
        if record.error is not None:
            raise SystemExit(f"the rlft job failed: {record.error.message}")
        events = JobDir(provider.home / "jobs" / record.id).iter_events()
        summary: dict[str, Any] = {}
        rewards = []
        for _, event in events:
            if (event.get("raw") or {}).get("train"):
                summary = event["raw"]["train"]
            reward = (event.get("metrics") or {}).get("train_reward_mean")
            if reward is not None:
                rewards.append(reward)
        return {
            "steps_per_second": summary["train_steps_per_second"],
            "steps_per_cpu_second": steps / summary["train_cpu_seconds"],
            "wall_seconds": time.monotonic() - started,
            "final_reward": rewards[-1],
        }

    return anyio.run(run)


# --- the driver ------------------------------------------------------------------------------


def _child(mode: str, steps: int, workdir: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--steps", str(steps)]
    command += ["--out", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["rlft", "direct", "direct-rlft-reward"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    if args.child:
        if args.child == "rlft":
            result = through_rlft(args.steps, args.out)
        else:
            reward = "rlft" if args.child == "direct-rlft-reward" else "plain"
            result = direct(args.steps, reward, args.out)
        print(json.dumps(result))
        return

    modes = ["direct", "rlft", "direct-rlft-reward"]
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="rlft-bench-") as tmp:
        for round_ in range(args.rounds):
            shift = round_ % len(modes)  # rotate the order so no side always runs first
            for mode in modes[shift:] + modes[:shift]:
                result = _child(mode, args.steps, Path(tmp) / f"{mode}-{round_}")
                results[mode].append(result)
                print(
                    f"round {round_ + 1} {mode:>18}: {result['steps_per_second']:6.2f} steps/s "
                    f"({result['steps_per_cpu_second']:6.2f} per CPU-second), "
                    f"{result['wall_seconds']:5.1f}s wall, final reward "
                    f"{result['final_reward']:.2f}",
                    flush=True,
                )

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    print(f"\n{args.steps} steps, median of {args.rounds} round(s), {os.cpu_count()} CPUs")
    for mode in modes:
        print(
            f"  {mode:>18}: {median(mode, 'steps_per_second'):6.2f} steps/s, "
            f"{median(mode, 'steps_per_cpu_second'):6.2f} steps per CPU-second, "
            f"{median(mode, 'wall_seconds'):5.1f}s wall"
        )
    for key, label in (("steps_per_second", "wall clock"), ("steps_per_cpu_second", "CPU time")):
        plain = median("rlft", key) / median("direct", key)
        same = median("rlft", key) / median("direct-rlft-reward", key)
        print(
            f"ratio rlft / direct, {label:>10}: {plain:.3f} vs a hand-written reward, "
            f"{same:.3f} vs the same rlft reward (the runner's own overhead)"
        )


if __name__ == "__main__":
    main()
