"""Reinforcement fine-tuning on OpenAI with rlft: route support tickets, graded two ways.

You need an OpenAI organisation that may still create fine-tuning jobs, and the id of a base
model it may fine-tune with RFT. rlft never guesses model ids (they retire: OpenAI stops new
fine-tuning jobs on 2027-01-06; see docs/providers/openai.md).

    export OPENAI_API_KEY=sk-...
    export RLFT_EXAMPLE_MODEL=o4-mini-2025-04-16     # a model your organisation can still use
    python examples/openai_rft.py

Other settings (organisation, project, a proxy base URL, retries) go in ``rlft.toml`` under
``[openai]``: see ``examples/hosted.rlft.toml`` (``RLFT_CONFIG=examples/hosted.rlft.toml``).
Ctrl-C stops *watching*; the job keeps running (and billing) until you cancel it.

CI runs this file with ``RLFT_PROVIDER=fake``: the same calls against rlft's in-memory backend.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio

import rlft
from rlft import graders as g

LABELS = ("billing", "bug", "account", "shipping")
TEMPLATES = {
    "billing": "I was charged twice for order {n}, please refund one payment.",
    "bug": "The app crashes when I open the settings page (build {n}).",
    "account": "I cannot log in since I changed my email address (user {n}).",
    "shipping": "Parcel {n} has not arrived after two weeks.",
}
RESPONSE_FORMAT = {  # structured output: graders read sample.output_json.*
    "type": "json_schema",
    "json_schema": {
        "name": "triage",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": list(LABELS)}},
            "required": ["label"],
            "additionalProperties": False,
        },
    },
}


def tickets(count: int = 80) -> rlft.Dataset:
    """A small ticket-triage set: the prompt, plus the ``label`` field the grader checks."""
    rows = []
    for n in range(count):
        label = LABELS[n % len(LABELS)]
        prompt = (
            f"Route this support ticket to one team ({', '.join(LABELS)}). Answer as JSON.\n\n"
            f"{TEMPLATES[label].format(n=1000 + n)}"
        )
        rows.append({"messages": [{"role": "user", "content": prompt}], "label": label})
    return rlft.Dataset.from_records(rows)


GRADER = g.Multi(
    name="triage",
    graders={
        "exact": g.StringCheck(
            name="exact",
            input="{{ sample.output_json.label }}",
            reference="{{ item.label }}",
            operation="eq",
        ),
        "close": g.TextSimilarity(
            name="close",
            input="{{ sample.output_json.label }}",
            reference="{{ item.label }}",
            evaluation_metric="fuzzy_match",
        ),
    },
    calculate_output="0.9 * exact + 0.1 * close",
)


async def main() -> int:
    provider = os.environ.get("RLFT_PROVIDER", "openai")
    model = os.environ.get("RLFT_EXAMPLE_MODEL") or ("demo-model" if provider == "fake" else None)
    if model is None:
        print("set RLFT_EXAMPLE_MODEL to a base model your organisation can fine-tune with RFT")
        return 2

    train, valid = tickets().split(validation=0.2, seed=7, stratify="label")
    # Try the grader on your own machine first: free, and the same semantics as the service.
    example = train[0]
    local = await GRADER.grade(json.dumps({"label": example.item["label"]}), example.item)
    print(f"local grade of a correct answer: {local.score:.2f}")

    async with rlft.Client(provider=provider) as client:
        if client.capabilities.validate_grader:  # OpenAI checks the grader before you pay
            await client.graders.validate(GRADER)
            remote = await client.graders.run(
                GRADER, sample=json.dumps({"label": "bug"}), item={"label": "billing"}
            )
            print(f"remote grade of a wrong answer: {remote.score:.2f}")

        job = await client.jobs.create(
            model=model,
            train=train,
            validation=valid,
            grader=GRADER,
            response_format=RESPONSE_FORMAT,
            hyperparameters=rlft.Hyperparameters(epochs=1, reasoning_effort="low"),
            name="rlft-triage",
            labels={"example": "openai_rft"},
        )
        print(f"job {job.id} on {job.provider}: {job.provider_status}")
        async for event in job.events():  # until the job ends; Ctrl-C only stops watching
            metrics = event.metrics
            if metrics is not None and metrics.step is not None:
                print(
                    f"step {metrics.step}/{metrics.total_steps}: "
                    f"train reward {metrics.train_reward_mean}, valid {metrics.valid_reward_mean}"
                )
            else:
                print(f"[{event.level}] {event.message}")

        await job.wait()
        print(f"job {job.id} ended {job.status.value} ({job.provider_status})")
        if job.status is not rlft.JobStatus.SUCCEEDED:
            print(f"reason: {job.error.message if job.error else 'none given'}")
            return 1
        checkpoints = await job.checkpoints()
        if checkpoints:
            best = max(checkpoints, key=lambda c: c.metrics.valid_reward_mean or 0.0)
            print(f"best checkpoint: step {best.step}, call it as model={best.model!r}")
        print(f"final model: {job.fine_tuned_model}")
        if provider != "fake":
            files = await job.download_results(Path("rlft-results") / job.id)
            print("result files:", ", ".join(str(path) for path in files) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
