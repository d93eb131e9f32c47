"""A process creating one job, for the concurrent-create tests.

python jobs_creator.py DB STATE_DIR

The backend ("holding") ignores idempotency keys and holds each create until a line arrives on
stdin. Log lines of rlft (the reservation's "waiting") go to stdout, one per line.
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio
from jobs_helpers import make_client, spec


async def main(args: argparse.Namespace) -> None:
    settings = {"state_dir": args.state, "ignore_idempotency": True}
    async with make_client(args.db, provider="holding", settings=settings) as client:
        job = await client.jobs.create(spec=spec("same"))
        print(f"RESULT {job.local_id} {job.id}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("state")
    anyio.run(main, parser.parse_args())
