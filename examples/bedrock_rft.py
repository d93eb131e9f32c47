"""Reinforcement fine-tuning on AWS Bedrock with rlft: Nova 2 Lite learns to add, graded by a
Lambda that rlft builds from the neutral grader below.

You need an AWS account with Bedrock model customization in us-east-1, a job role, and an S3
bucket for staging (docs/providers/bedrock.md lists the IAM policies):

    export AWS_PROFILE=...                      # or any AWS credential chain
    export RLFT_BEDROCK_REGION=us-east-1
    export RLFT_BEDROCK_ROLE_ARN=arn:aws:iam::<account>:role/rlft-bedrock-rft
    export RLFT_BEDROCK_S3_URI=s3://<bucket>/rlft
    python examples/bedrock_rft.py              # add --deploy to deploy the result on demand

What happens: the data is rendered to Bedrock's RFT JSONL and staged in S3; the grader is packaged
as a Lambda (rlft's own engine inside), deployed as ``rlft-grader-arithmetic`` and published; the
job role's ``lambda:InvokeFunction`` is checked; then the RFT job starts. Nova jobs take hours and
the native API reports only the status and final losses. Ctrl-C stops *watching*; the job keeps
running (and billing) until you cancel it.

For gpt-oss or Qwen3 set ``RLFT_EXAMPLE_MODEL=openai.gpt-oss-20b``: the same code runs through
Bedrock's OpenAI-compatible endpoint (us-west-2 in AWS's samples). CI runs this file with
``RLFT_PROVIDER=fake``: the same calls against rlft's in-memory backend.
"""

from __future__ import annotations

import os
import random
import sys

import anyio

import rlft
from rlft import graders as g


def close_enough(sample: dict, item: dict) -> float:  # type: ignore[type-arg]
    """Partial credit for a near miss: 1.0 when exact, falling to 0 at 10% off."""
    import re

    found = re.findall(r"-?\d+", sample.get("output_text") or "")
    if not found:
        return 0.0
    want = float(item["reference_answer"])
    return max(0.0, 1.0 - abs(float(found[-1]) - want) / max(1.0, abs(want) * 0.1))


GRADER = g.Multi(
    name="arithmetic",
    graders={
        "exact": g.StringCheck(
            name="exact",
            input="{{ sample.output_text }}",
            reference="{{ item.reference_answer }}",
            operation="eq",
        ),
        "close": g.Python.from_function(close_enough, name="close"),
    },
    calculate_output="0.7 * exact + 0.3 * close",
)


def sums(count: int = 150, *, seed: int = 7) -> rlft.Dataset:
    """Bedrock wants 100-20,000 single-turn prompts, each with a ``reference_answer``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Answer with the number only."},
                    {"role": "user", "content": f"What is {a} + {b}?"},
                ],
                "reference_answer": str(a + b),
            }
        )
    return rlft.Dataset.from_records(rows)


async def main() -> int:
    provider = os.environ.get("RLFT_PROVIDER", "bedrock")
    model = os.environ.get("RLFT_EXAMPLE_MODEL")  # None: Nova 2 Lite on Bedrock
    if provider == "fake":
        model = model or "demo-model"
    deploy = "--deploy" in sys.argv

    # No validation set: whether Nova 2 Lite RFT takes one is unsettled (AWS's Forge SDK drops
    # it, AWS's notebooks pass one), and rlft holds a validation set to the same 100-row minimum.
    train = sums()
    # The grader runs here exactly as it will inside the Lambda: try it before paying.
    example = train[0]
    right = await GRADER.grade(example.item["reference_answer"], example.item)
    wrong = await GRADER.grade("12", example.item)
    print(f"local grades: right answer {right.score:.2f}, wrong answer {wrong.score:.2f}")

    async with rlft.Client(provider=provider) as client:
        job = await client.jobs.create(
            model=model,
            train=train,
            grader=GRADER,
            hyperparameters=rlft.Hyperparameters(
                epochs=1, batch_size=16, samples_per_prompt=4, learning_rate=5e-5
            )
            if provider == "bedrock" and model is None
            else rlft.Hyperparameters(epochs=1),
            name="rlft-arithmetic",
            labels={"example": "bedrock_rft"},
        )
        print(f"job {job.id} on {job.provider}: {job.provider_status}")
        async for event in job.events():  # Ctrl-C only stops watching
            print(f"[{event.level}] {event.message}")

        await job.wait()
        print(f"job ended {job.status.value} ({job.provider_status})")
        if job.status is not rlft.JobStatus.SUCCEEDED:
            print(f"reason: {job.error.message if job.error else 'none given'}")
            return 1
        checkpoints = await job.checkpoints()
        print(f"trained model: {job.fine_tuned_model}")
        if deploy and checkpoints and client.capabilities.deploy_checkpoint:
            # On-demand deployment: invoke the returned ARN with InvokeModel / Converse once
            # GetCustomModelDeployment says Active. It bills per token while it exists.
            target = await job.deploy(checkpoints[-1], name="rlft-arithmetic")
            print(f"deployed: call modelId={target!r}")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
