"""Job: a handle on one fine-tuning job, on any backend."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio

from rlft._models import Capabilities, Checkpoint, JobErrorInfo, JobEvent, JobRecord, JobStatus
from rlft.exceptions import CapabilityError, JobCancelledError, JobFailedError, UsageError
from rlft.provider import Provider

if TYPE_CHECKING:
    from rlft._store import JobStore

__all__ = ["Job"]


class Job:
    """A handle on one job. Cheap to create; every method is one or a few provider calls.

    The latest snapshot is ``job.record``; ``refresh()`` fetches a new one. A job that ends
    ``failed`` or ``cancelled`` is a result, not an exception: ``raise_for_status()`` opts in.

    A job created or reattached through a ``Client`` carries its ``local_id`` in the job store,
    and every snapshot it fetches is saved there.

    Args:
        provider: The provider instance, or a callable building it on first use (a job listed
            from the store needs no credentials until it talks to its backend).
        record: The latest snapshot.
        local_id: The job's id in the job store, if it is recorded there.
        store: The job store to save fresh snapshots to.
    """

    def __init__(
        self,
        *,
        provider: Provider | Callable[[], Provider],
        record: JobRecord,
        local_id: str | None = None,
        store: JobStore | None = None,
    ) -> None:
        self._bound: Provider | None = provider if isinstance(provider, Provider) else None
        self._connect = None if isinstance(provider, Provider) else provider
        self.record = record
        self._local_id = local_id
        self._store = store

    def __repr__(self) -> str:
        return f"<Job {self.id} provider={self.provider!r} status={self.status.value!r}>"

    @property
    def _provider(self) -> Provider:
        if self._bound is None:
            if self._connect is None:
                raise UsageError(
                    f"job {self.id} is a detached snapshot (it was pickled); reattach it with "
                    "`await client.jobs.get(job_id)`"
                )
            self._bound = self._connect()
        return self._bound

    @property
    def backend(self) -> Provider:
        """The provider instance this job talks to, built on first use.

        Jobs on the same backend endpoint share one instance, so a poller can group them.
        """
        return self._provider

    @property
    def capabilities(self) -> Capabilities:
        """What this job's backend can do (pause, events, list_jobs, ...)."""
        return self._provider.capabilities

    @property
    def store(self) -> JobStore | None:
        """The job store this job's snapshots are saved to, if it is recorded."""
        return self._store

    def attach_to(self, store: JobStore, local_id: str) -> Self:
        """Record this job in ``store`` under ``local_id``: later snapshots are saved there.

        Raises:
            UsageError: The job is already recorded under another local id.
        """
        if self._local_id is not None and self._local_id != local_id:
            raise UsageError(
                f"job {self.id} is already recorded as {self._local_id}, not {local_id}"
            )
        self._local_id, self._store = local_id, store
        return self

    async def _save(self, previous: JobRecord) -> None:
        """Save the snapshot to the job store when something a user sees changed."""
        if self._store is None or self._local_id is None:
            return
        keys = ("status", "provider_status", "fine_tuned_model", "error", "finished_at")
        if any(getattr(previous, k) != getattr(self.record, k) for k in keys):
            await self._store.update(self._local_id, self.record)

    # --- the snapshot -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The backend's job id."""
        return self.record.id

    @property
    def local_id(self) -> str | None:
        """The job's id in the job store (``rlft-3f9a0c2b7d1e``), or ``None`` if unrecorded."""
        return self._local_id

    @property
    def provider(self) -> str:
        """The provider id (``"local"``, ``"openai"``, ...)."""
        return self.record.provider

    @property
    def status(self) -> JobStatus:
        """The neutral status at the last refresh."""
        return self.record.status

    @property
    def provider_status(self) -> str:
        """The backend's own status word at the last refresh."""
        return self.record.provider_status

    @property
    def error(self) -> JobErrorInfo | None:
        """Why the job failed, when it did."""
        return self.record.error

    @property
    def fine_tuned_model(self) -> str | None:
        """The final model to call, once the job succeeded."""
        return self.record.fine_tuned_model

    @property
    def created_at(self) -> datetime | None:
        return self.record.created_at

    # --- remote operations --------------------------------------------------------------------

    async def refresh(self) -> Self:
        """Fetch the job's current state."""
        previous, self.record = self.record, await self._provider.get_job(self.id)
        await self._save(previous)
        return self

    async def checkpoints(self) -> list[Checkpoint]:
        """Saved checkpoints, oldest first."""
        self._require("list_checkpoints", "checkpoints")
        return await self._provider.list_checkpoints(self.id)

    async def pause(self) -> Self:
        """Pause the job, keeping a resumable checkpoint (where the backend can)."""
        self._require("pause_job", "pause")
        previous, self.record = self.record, await self._provider.pause_job(self.id)
        await self._save(previous)
        return self

    async def resume(self) -> Self:
        """Resume a paused job."""
        self._require("resume_job", "resume")
        previous, self.record = self.record, await self._provider.resume_job(self.id)
        await self._save(previous)
        return self

    async def cancel(self) -> Self:
        """Cancel the job on the backend. The only way (with guards) rlft stops a remote job."""
        self._require("cancel_job", "cancel")
        previous, self.record = self.record, await self._provider.cancel_job(self.id)
        await self._save(previous)
        return self

    async def deploy(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Deploy a checkpoint for inference and return the id to call."""
        self._require("deploy_checkpoint", "deploy")
        return await self._provider.deploy_checkpoint(checkpoint, name=name)

    async def download_results(self, path: str | Path) -> list[Path]:
        """Download the job's result files into the folder ``path``; return the files written."""
        self._require("download_results", "result file downloads")
        return await self._provider.download_results(self.id, Path(path))

    async def events(
        self,
        *,
        after: str | None = None,
        follow: bool = True,
        poll_interval: float | None = None,
    ) -> AsyncIterator[JobEvent]:
        """Yield the job's events in order, each once.

        Args:
            after: An event id to resume after (``None``: from the first event).
            follow: Keep polling until the job is terminal and every event is read. ``False``
                yields what exists now and stops.
            poll_interval: Seconds between polls (default: the provider's suggestion).

        Leaving the loop early only stops watching: it never cancels the job.
        """
        self._require("list_events", "events")
        cursor = after
        interval = poll_interval or self._provider.capabilities.poll_interval
        while True:
            batch = await self._provider.list_events(self.id, after=cursor)
            for event in batch:
                cursor = event.id
                yield event
            if not follow:
                return
            if not batch:
                await self.refresh()
                if self.status.is_terminal:
                    # One last read: events written between the poll and the refresh.
                    for event in await self._provider.list_events(self.id, after=cursor):
                        cursor = event.id
                        yield event
                    return
                await anyio.sleep(_jitter(interval))

    async def wait(
        self, *, timeout: float | None = None, poll_interval: float | None = None
    ) -> Self:
        """Wait until the job is terminal, and return it refreshed.

        A failed job is returned, not raised: call ``raise_for_status()`` to opt in.

        Args:
            timeout: Seconds to wait, or ``None`` to wait forever. On timeout ``TimeoutError``
                is raised; the job keeps running. Cancelling the wait never cancels the job.
            poll_interval: Seconds between polls (default: the provider's suggestion), with
                jitter so many waiters don't poll in step.
        """
        interval = poll_interval or self._provider.capabilities.poll_interval
        with anyio.fail_after(timeout):
            await self.refresh()
            while not self.status.is_terminal:
                await anyio.sleep(_jitter(interval))
                await self.refresh()
        return self

    def raise_for_status(self) -> Self:
        """Raise ``JobFailedError`` or ``JobCancelledError`` on those outcomes; else return self."""
        if self.status is JobStatus.FAILED:
            reason = self.error.message if self.error else "no reason given"
            raise JobFailedError(f"job {self.id} failed: {reason}", job=self)
        if self.status is JobStatus.CANCELLED:
            raise JobCancelledError(f"job {self.id} was cancelled", job=self)
        return self

    def _require(self, capability: str, operation: str) -> None:
        if not getattr(self._provider.capabilities, capability):
            raise CapabilityError(provider=self.provider, operation=operation)

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled job (inside a pickled JobError) keeps its snapshot, not the live provider.
        return (_detached_job, (self.record, self._local_id))


def _detached_job(record: JobRecord, local_id: str | None = None) -> Job:
    job = Job.__new__(Job)
    job.record = record
    job._bound = job._connect = job._store = None
    job._local_id = local_id
    return job


def _jitter(interval: float) -> float:
    return interval * random.uniform(0.8, 1.2)  # noqa: S311 - spreading polls, not security
