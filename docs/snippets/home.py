"""The example on the docs' home page. tests/docs runs it with RLFT_PROVIDER=fake."""

import anyio

import rlft
from rlft import graders as g


async def main() -> None:
    data = rlft.Dataset.from_jsonl("examples/quickstart/data/train.jsonl")
    train, valid = data.split(validation=0.1, seed=7)
    grader = g.StringCheck(
        name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
    )
    result = await grader.grade("billing", {"label": "billing"})  # try the grader first: free
    print("score", result.score)

    async with rlft.Client() as client:  # the provider comes from rlft.toml or RLFT_PROVIDER
        job = await client.jobs.create(train=train, validation=valid, grader=grader)
        async for event in job.events():  # the same neutral events on every backend
            if event.metrics:
                print("step", event.metrics.step, "reward", event.metrics.train_reward_mean)
        await job.wait()  # a failed job is returned, not raised
        best = max(await job.checkpoints(), key=lambda c: c.metrics.train_reward_mean or 0)
        print(job.status, best.model)


anyio.run(main)
