"""A watcher process for the crash-safety tests: reattach jobs, print each event it delivers.

python jobs_watcher.py DB STATE_DIR LOCAL_ID [AFTER_EVENT_ID] [--delay SECONDS] [--die-at-end]

LOCAL_ID ``-`` reattaches as ``rlft jobs watch`` does with no ids (every unsettled job).
``--die-at-end`` SIGKILLs the process right after it saves a job's terminal status, before it
reads the job's last events: the crash window the store must survive.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence

import anyio
from jobs_helpers import make_client

from rlft._manager import JobManager
from rlft._models import JobRecord
from rlft._store import JobStore


def die_after_terminal_saves() -> None:
    update_many = JobStore.update_many

    async def dying(self: JobStore, updates: Sequence[tuple[str, JobRecord]]) -> None:
        await update_many(self, updates)
        if any(record.status.is_terminal for _, record in updates):
            print("saved terminal status; dying", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    JobStore.update_many = dying  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    if args.die_at_end:
        die_after_terminal_saves()
    async with make_client(args.db, settings={"state_dir": args.state}) as client:
        manager = JobManager(client=client, poll_interval=0.005)
        attached = await manager.attach(None if args.local_id == "-" else [args.local_id])
        if not attached:
            print("nothing to watch", flush=True)
            return
        (job,) = attached
        row = await client.store.get(job.local_id or "")  # type: ignore[union-attr]
        print(f"attached {job.local_id} {job.id} cursor={row.event_cursor}", flush=True)  # type: ignore[union-attr]
        after = {job.local_id: args.after} if args.after else None
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
    parser.add_argument("--die-at-end", action="store_true")
    anyio.run(main, parser.parse_args())
