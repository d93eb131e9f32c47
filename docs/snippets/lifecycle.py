"""The job lifecycle, as docs/concepts.md shows it. tests/docs runs it with RLFT_PROVIDER=fake.

Each ``--8<--`` section is included in the page; the asserts are what the page promises.
"""

import anyio

import rlft
from rlft import graders as g


async def main() -> None:
    train = rlft.Dataset.from_jsonl("examples/quickstart/data/train.jsonl", limit=100)
    grader = g.StringCheck(
        name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
    )
    # --8<-- [start:create]
    async with rlft.Client() as client:
        job = await client.jobs.create(train=train, grader=grader, name="triage")
        print(job.id, job.status, job.provider_status)  # neutral status + the backend's word
        await job.refresh()  # one remote call: the latest snapshot
        # --8<-- [end:create]
        assert job.status is rlft.JobStatus.RUNNING

        # --8<-- [start:control]
        if client.capabilities.pause_job:  # declared per backend: Bedrock cannot pause
            await job.pause()  # keeps a resumable checkpoint
            assert job.status is rlft.JobStatus.PAUSED
            await job.resume()
        # --8<-- [end:control]

        # --8<-- [start:wait]
        await job.wait()  # returns at any terminal status: a failed job is data
        if job.status is rlft.JobStatus.FAILED:
            print("failed:", job.error)
        checkpoints = await job.raise_for_status().checkpoints()  # ...or opt in to an error
        best = max(checkpoints, key=lambda c: c.metrics.valid_reward_mean or 0)
        print("best checkpoint:", best.step, best.model)  # what you call or deploy
        # --8<-- [end:wait]
        assert job.status is rlft.JobStatus.SUCCEEDED

    # --8<-- [start:reattach]
    async with rlft.Client() as client:  # later, in another process: the job store knows it
        again = await client.jobs.get(job.id)
        print(again.id, again.status)
    # --8<-- [end:reattach]
    assert again.status is rlft.JobStatus.SUCCEEDED


anyio.run(main)
