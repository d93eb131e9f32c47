"""A watcher process for the crash-safety test: reattach one job, print each event it delivers.

python jobs_watcher.py DB STATE_DIR LOCAL_ID [AFTER_EVENT_ID] [--delay SECONDS]
"""

from __future__ import annotations

import argparse

import anyio
from jobs_helpers import make_client

from rlft._manager import JobManager


async def main(args: argparse.Namespace) -> None:
    async with make_client(args.db, settings={"state_dir": args.state}) as client:
        manager = JobManager(client=client, poll_interval=0.005)
        (job,) = await manager.attach([args.local_id])
        row = await client.store.get(args.local_id)  # type: ignore[union-attr]
        print(f"attached {job.local_id} {job.id} cursor={row.event_cursor}", flush=True)  # type: ignore[union-attr]
        after = {args.local_id: args.after} if args.after else None
        async with manager.watch([job], after=after) as updates:
            async for update in updates:
                if update.kind == "event" and update.event is not None:
                    print(f"event {update.event.id}", flush=True)
                    await anyio.sleep(args.delay)  # a slow consumer: the kill lands mid-run
        print(f"done {job.status.value}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("state")
    parser.add_argument("local_id")
    parser.add_argument("after", nargs="?")
    parser.add_argument("--delay", type=float, default=0.0)
    anyio.run(main, parser.parse_args())
