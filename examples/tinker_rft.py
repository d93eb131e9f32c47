"""GRPO on a Tinker-protocol service with rlft: your grader runs here, training runs there.

The loop (sampling, grading, advantages, checkpoints) runs in a worker on this machine; the
service does forward/backward, the optimizer step and sampling on a LoRA adapter. You need a
Tinker API key and a base model the service offers for training (its Models & Pricing page
lists them; rlft never guesses model ids).

    export TINKER_API_KEY=tml-...
    export RLFT_EXAMPLE_MODEL=Qwen/Qwen3-4B-Instruct-2507    # a model your service trains
    # export RLFT_TINKER_BASE_URL=http://localhost:8000     # a Tinker-compatible server
    python examples/tinker_rft.py

The job outlives this script: Ctrl-C stops *watching*, not training (or billing). See
docs/providers/tinker.md for the settings and what it costs.

CI runs this file with ``RLFT_PROVIDER=fake``: the same calls against rlft's in-memory backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

import rlft
from rlft import graders as g

QUICKSTART = Path(__file__).parent / "quickstart"

# The quickstart's ticket triage, graded by a python grader that runs in rlft's sandbox on this
# machine: 1.0 for the right label as the first word, 0.2 for a label word anywhere.
GRADER = g.Python(
    name="triage",
    source=(
        "def grade(sample, item):\n"
        "    words = sample['output_text'].lower().split()\n"
        "    if words and words[0].strip('.,!') == item['label']:\n"
        "        return 1.0\n"
        "    return 0.2 if item['label'] in words else 0.0\n"
    ),
)


async def main() -> int:
    provider = os.environ.get("RLFT_PROVIDER", "tinker")
    model = os.environ.get("RLFT_EXAMPLE_MODEL") or ("demo-model" if provider == "fake" else None)
    if model is None:
        print("set RLFT_EXAMPLE_MODEL to a base model your Tinker service can train")
        return 2

    train = rlft.Dataset.from_jsonl(QUICKSTART / "data" / "train.jsonl", limit=256)
    valid = rlft.Dataset.from_jsonl(QUICKSTART / "data" / "valid.jsonl", limit=32)
    example = train[0]  # try the grader first: free, and exactly what the worker will run
    local = await GRADER.grade(str(example.item["label"]), example.item)
    print(f"local grade of a correct answer: {local.score:.2f}")

    async with rlft.Client(provider=provider) as client:
        job = await client.jobs.create(
            model=model,
            train=train,
            validation=valid,
            grader=GRADER,
            hyperparameters=rlft.Hyperparameters(
                max_steps=20,
                batch_size=8,
                samples_per_prompt=8,
                learning_rate=4e-5,
                max_completion_tokens=8,
                eval_interval=10,
                provider_options={"lora_rank": 32} if provider == "tinker" else {},
            ),
            name="rlft-tinker-triage",
            labels={"example": "tinker_rft"},
        )
        print(f"job {job.id} on {job.provider}: {job.provider_status}")
        async for event in job.events():  # until the job ends; Ctrl-C only stops watching
            metrics = event.metrics
            if event.kind == "metrics" and metrics is not None:
                print(
                    f"step {metrics.step}/{metrics.total_steps}: train reward "
                    f"{metrics.train_reward_mean}, valid {metrics.valid_reward_mean}, "
                    f"tokens {metrics.tokens or '-'}"
                )
            else:
                print(f"[{event.level}] {event.message}")

        await job.wait()
        print(f"job {job.id} ended {job.status.value} ({job.provider_status})")
        if job.status is not rlft.JobStatus.SUCCEEDED:
            print(f"reason: {job.error.message if job.error else 'none given'}")
            return 1
        checkpoints = await job.checkpoints()
        if checkpoints:  # tinker:// sampler paths: sample them with generate
            last = checkpoints[-1]
            print(f"last checkpoint: step {last.step}, model={last.model!r}")
            if client.capabilities.generate:
                [answer] = await client.provider.generate(
                    model=last.model, prompts=[list(example.messages)], max_tokens=8
                )
                print(f"it answers {example.messages[-1]['content']!r} with {answer!r}")
        print(f"final model: {job.fine_tuned_model}")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
