"""Reinforcement fine-tuning on Azure AI Foundry (Azure OpenAI) with rlft, then deployment.

You need an Azure OpenAI / Foundry resource in a region that offers RFT, the 'Foundry User'
role on it (formerly 'Azure AI User'), and the name of an RFT base model it offers. rlft never
guesses model ids (they retire; see docs/providers/azure.md).

    export AZURE_OPENAI_ENDPOINT=https://<resource>.openai.azure.com
    export AZURE_OPENAI_API_KEY=...          # or leave it unset and `az login` (Entra ID)
    export RLFT_EXAMPLE_MODEL=o4-mini-2025-04-16
    RLFT_CONFIG=examples/hosted.rlft.toml python examples/azure_rft.py [--deploy NAME]

``examples/hosted.rlft.toml`` sets ``training_type``, the route (classic or v1) and, for
``--deploy``, the subscription and resource group that Azure Resource Manager needs (deploying
also needs the 'Foundry Owner' role and Entra ID: ARM takes no API keys). Azure auto-pauses a job
at $5,000 of training cost; resume it with ``rlft`` or ``job.resume()``. Ctrl-C stops
*watching*; the job keeps running (and billing) until you cancel it.

CI runs this file with ``RLFT_PROVIDER=fake``: the same calls against rlft's in-memory backend.
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

import rlft
from rlft import graders as g
from rlft.exceptions import NotFoundError

LABELS = ("billing", "bug", "account", "shipping")
TEMPLATES = {
    "billing": "I was charged twice for order {n}, please refund one payment.",
    "bug": "The app crashes when I open the settings page (build {n}).",
    "account": "I cannot log in since I changed my email address (user {n}).",
    "shipping": "Parcel {n} has not arrived after two weeks.",
}


def tickets(count: int = 80) -> rlft.Dataset:
    """A small ticket-triage set. Azure RFT files take no "system" role: use "developer"."""
    rows = []
    for n in range(count):
        label = LABELS[n % len(LABELS)]
        rows.append(
            {
                "messages": [
                    {"role": "developer", "content": f"Answer with one of: {', '.join(LABELS)}."},
                    {"role": "user", "content": TEMPLATES[label].format(n=1000 + n)},
                ],
                "label": label,
            }
        )
    return rlft.Dataset.from_records(rows)


# A plain-text answer graded case-insensitively: "Billing." still contains "billing".
GRADER = g.StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="ilike"
)


async def main(deploy: str | None) -> int:
    provider = os.environ.get("RLFT_PROVIDER", "azure")
    model = os.environ.get("RLFT_EXAMPLE_MODEL") or ("demo-model" if provider == "fake" else None)
    if model is None:
        print("set RLFT_EXAMPLE_MODEL to an RFT base model your Azure resource offers")
        return 2

    train, valid = tickets().split(validation=0.2, seed=7, stratify="label")  # Azure needs both
    example = train[0]
    local = await GRADER.grade(f"It is {example.item['label'].upper()}.", example.item)
    print(f"local grade of a correct answer: {local.score:.2f}")

    async with rlft.Client(provider=provider) as client:
        if client.capabilities.validate_grader:
            try:
                await client.graders.validate(GRADER)  # the alpha endpoint: on api = "v1"
            except NotFoundError as exc:
                print(f"remote grader validation unavailable here: {exc}")

        job = await client.jobs.create(
            model=model,
            train=train,
            validation=valid,
            grader=GRADER,
            hyperparameters=rlft.Hyperparameters(epochs=1),
            name="rlft-triage",  # Azure suffixes: up to 40 of a-z A-Z 0-9 - _
            labels={"example": "azure_rft"},
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
                print(f"[{event.level}] {event.message}")  # Azure's "warning" arrives as such

        await job.wait()
        print(f"job {job.id} ended {job.status.value} ({job.provider_status})")
        if job.status is not rlft.JobStatus.SUCCEEDED:
            print(f"reason: {job.error.message if job.error else 'none given'}")
            return 1
        checkpoints = await job.checkpoints()
        best = max(checkpoints, key=lambda c: c.metrics.valid_reward_mean or 0.0, default=None)
        if best is not None:
            reward = best.metrics.valid_reward_mean
            print(f"best checkpoint: step {best.step} ({best.id}), valid reward {reward}")
        if deploy and best is not None and client.capabilities.deploy_checkpoint:
            name = await job.deploy(best, name=deploy)
            # ARM answers at once; the deployment serves requests a few minutes later.
            print(f"deploying as {name!r}: call it with model={name!r} once it is ready")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", metavar="NAME", help="deploy the best checkpoint as NAME")
    sys.exit(anyio.run(main, parser.parse_args().deploy))
