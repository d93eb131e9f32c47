"""JobManager: many jobs on many backends at once, with one poller per provider.

```python
async with rlft.Client() as client:
    manager = rlft.JobManager(client=client, guards=[rlft.guards.RewardGapGuard()])
    jobs = await manager.submit(specs)                       # bounded, idempotent creates
    async with manager.watch(jobs) as updates:               # a receive stream of JobUpdate
        async for update in updates:
            print(update.kind, update.job_id, update.status)
    await manager.wait_all(jobs, timeout=6 * 3600)
```

Statuses are refreshed through the backend's list endpoint (one page for many jobs) where it has
one, falling back to one request per job only for jobs the page missed. Every call to a backend
goes through that provider's ``CapacityLimiter`` and pacing gate (requests per second, and a pause
after a ``Retry-After``). Leaving ``watch()`` or cancelling ``wait_all()`` stops watching only:
remote jobs are cancelled by ``cancel_all()``, ``job.cancel()`` or a guard, never by accident.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from rlft._job import Job
from rlft._models import JobEvent, JobRecord, JobStatus
from rlft.exceptions import NotFoundError, ProviderError, RateLimitError, RLFTError, UsageError
from rlft.guards import GraderHealthGuard, Guard, GuardTrip, enforce
from rlft.tracking import Reporter, Tracker, TrackingError, make_trackers

if TYPE_CHECKING:
    from rlft._client import Client
    from rlft._spec import CheckedSpec, JobSpec
    from rlft._store import StoredJob
    from rlft.provider import Provider

__all__ = ["Clock", "JobManager", "JobUpdate"]

T = TypeVar("T")

UpdateKind = Literal["status", "event", "guard", "error"]
_MAX_BACKOFF = 32  # after failed ticks, the poll interval grows up to this factor
_LIST_SLACK = 50  # list this many more jobs than we watch: other jobs may be newer than ours


@dataclass(frozen=True, kw_only=True)
class JobUpdate:
    """One thing the manager saw, in order per job.

    Attributes:
        kind: ``"status"`` (a new status; the first update of each job is its current one),
            ``"event"`` (a new job event), ``"guard"`` (a guard tripped; see ``trip``) or
            ``"error"`` (a poll failed; the watch goes on, see ``error``).
        provider: The provider id.
        job: The job, or ``None`` for an error that concerns a whole provider poll.
        status: The job's status at this update (``None`` with no job).
        previous_status: The status before, for ``"status"`` updates after the first.
        event: The event, for ``"event"`` updates.
        trip: The guard's verdict and what was done, for ``"guard"`` updates.
        error: The failure, for ``"error"`` updates.
        replayed: True for events read back from the job store (``watch(after=...)``).
    """

    kind: UpdateKind
    provider: str
    job: Job | None = None
    status: JobStatus | None = None
    previous_status: JobStatus | None = None
    event: JobEvent | None = None
    trip: GuardTrip | None = None
    error: RLFTError | None = None
    replayed: bool = False

    @property
    def job_id(self) -> str | None:
        """The backend's job id, if the update concerns one job."""
        return self.job.id if self.job is not None else None


class Clock(Protocol):
    """What the manager paces with: the event loop's clock by default, a virtual one in tests."""

    def now(self) -> float:
        """Seconds, monotonic."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...


class _LoopClock:
    """The event loop's clock."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _Gate:
    """Paces one provider's calls: at most ``rate`` per second, none before a Retry-After ends."""

    def __init__(self, rate: float | None, clock: Clock) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._next = 0.0
        self._blocked_until = 0.0

    async def wait(self) -> None:
        now = self._clock.now()
        start = max(now, self._next, self._blocked_until)
        self._next = start + self._interval
        if start > now:
            await self._clock.sleep(start - now)

    def block(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock.now() + seconds)


@dataclass(eq=False)
class _Watched:
    job: Job
    cursor: str | None = None
    drained: bool = False
    done: bool = False
    guard_paused: bool = False


@dataclass
class _Sink:
    """The send side of a watch: swallows a closed stream (the consumer left)."""

    send: MemoryObjectSendStream[JobUpdate]
    closed: bool = False

    async def __call__(self, update: JobUpdate) -> None:
        if self.closed:
            return
        try:
            await self.send.send(update)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closed = True


def _changed(before: JobRecord, after: JobRecord) -> bool:
    keys = ("status", "provider_status", "fine_tuned_model", "error", "finished_at")
    return any(getattr(before, key) != getattr(after, key) for key in keys)


def _key(job: Job) -> tuple[str, str]:
    return (job.provider, job.id)


class JobManager:
    """Runs and watches many jobs, across providers, with guards.

    Args:
        client: The client whose providers, configuration and job store the manager uses.
        guards: Guards applied to every watched job (see ``rlft.guards``). Default:
            ``[GraderHealthGuard()]``, so a grader that keeps failing never trains in silence;
            pass ``[]`` for none.
        concurrency: Calls in flight per provider (polls, event reads).
        create_concurrency: Creates (uploads included) in flight per provider.
        rate_limits: Requests per second per provider id (``{"openai": 2.0}``); unlimited
            otherwise. A ``RateLimitError`` with ``Retry-After`` also pauses that provider.
        poll_interval: Seconds between polls (default: each provider's suggestion), jittered.
        list_limit: Most jobs one status listing walks.
        clock: What polls and pacing wait on (default: the event loop's clock). Tests pass a
            virtual clock, so timing assertions never depend on how busy the machine is.
        trackers: Experiment trackers every watched job's metrics go to as they arrive:
            ``"trackio"``, ``"wandb"``, ``"mlflow"`` or ``rlft.tracking`` objects. A tracker
            that fails is reported as an ``"error"`` update; the job goes on.
    """

    def __init__(
        self,
        *,
        client: Client,
        guards: Sequence[Guard[Any]] | None = None,
        concurrency: int = 4,
        create_concurrency: int = 2,
        rate_limits: Mapping[str, float] | None = None,
        poll_interval: float | None = None,
        list_limit: int = 2000,
        clock: Clock | None = None,
        trackers: Iterable[str | Tracker] = (),
    ) -> None:
        if concurrency < 1 or create_concurrency < 1:
            raise UsageError("JobManager concurrency and create_concurrency must be >= 1")
        self.client = client
        self.guards = list(guards) if guards is not None else [GraderHealthGuard()]
        self.jobs: list[Job] = []
        """Every job submitted or attached, in order."""
        self._concurrency = concurrency
        self._create_concurrency = create_concurrency
        self._rates = dict(rate_limits or {})
        self._poll_interval = poll_interval
        self._list_limit = list_limit
        self._clock: Clock = clock or _LoopClock()
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._create_limiters: dict[str, anyio.CapacityLimiter] = {}
        self._gates: dict[str, _Gate] = {}
        self._cursors: dict[tuple[str, str], str | None] = {}
        self._fed: dict[tuple[str, str], set[str]] = {}
        built = make_trackers(trackers)  # fails now, before any job, when one can't work
        self._reporter = Reporter(built) if built else None

    def __repr__(self) -> str:
        return f"<rlft.JobManager jobs={len(self.jobs)} guards={len(self.guards)}>"

    # --- plumbing -----------------------------------------------------------------------------

    def _limiter(self, name: str) -> anyio.CapacityLimiter:
        if name not in self._limiters:
            self._limiters[name] = anyio.CapacityLimiter(self._concurrency)
        return self._limiters[name]

    def _gate(self, name: str) -> _Gate:
        if name not in self._gates:
            self._gates[name] = _Gate(self._rates.get(name), self._clock)
        return self._gates[name]

    async def _call(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One backend call under the provider's limiter and gate. Never retried here."""
        async with self._limiter(name):
            gate = self._gate(name)
            await gate.wait()
            try:
                return await fn()
            except RateLimitError as exc:
                if exc.retry_after:
                    gate.block(exc.retry_after)
                raise

    def _track(self, jobs: Iterable[Job]) -> None:
        known = {_key(job) for job in self.jobs}
        for job in jobs:
            if _key(job) not in known:
                self.jobs.append(job)
                known.add(_key(job))

    def _targets(self, jobs: Iterable[Job] | None) -> list[Job]:
        targets = list(self.jobs if jobs is None else jobs)
        self._track(targets)
        return targets

    def _interval(self, provider: Provider) -> float:
        return self._poll_interval or provider.capabilities.poll_interval

    # --- creating -----------------------------------------------------------------------------

    async def submit(
        self, specs: Iterable[JobSpec | CheckedSpec], *, provider: str | None = None
    ) -> list[Job]:
        """Create one job per spec, a few at a time; every spec is checked before any upload.

        Each spec is checked once: a ``CheckedSpec`` from ``client.jobs.check`` for the same
        provider is not checked again, and the create does not repeat the check.

        Creates are idempotent: submitting the same specs again (after a crash, a timeout or a
        partial failure) returns the jobs already created instead of paying twice.

        Args:
            specs: The job specs (a sweep: graders x hyperparameters), checked or not.
            provider: The provider id to run them on (default: the client's).

        Returns:
            The jobs, in the order of ``specs``.

        Raises:
            UsageError: A spec fails a check; nothing was uploaded or created.
            ExceptionGroup: Some creates failed; the others finished and are in ``self.jobs``.
        """
        target = self.client.provider_for(provider)
        checked = [self.client.jobs.check(spec, provider=target.name) for spec in specs]
        results: list[Job | None] = [None] * len(checked)
        errors: list[RLFTError] = []
        if target.name not in self._create_limiters:
            self._create_limiters[target.name] = anyio.CapacityLimiter(self._create_concurrency)
        limiter = self._create_limiters[target.name]

        async def create(index: int, spec: CheckedSpec) -> None:
            try:
                async with limiter:
                    await self._gate(target.name).wait()
                    results[index] = await self.client.jobs.create(spec=spec, provider=target.name)
            except RLFTError as exc:  # the others go on; a re-submit reuses what was created
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for index, one in enumerate(checked):
                tg.start_soon(create, index, one, name=f"rlft-create-{index}")
        created = [job for job in results if job is not None]
        self._track(created)
        if errors:
            raise ExceptionGroup(
                f"{len(errors)} of {len(checked)} jobs could not be created; the {len(created)} "
                "created are in manager.jobs and the job store, and submitting the same specs "
                "again reuses them",
                errors,
            )
        return created

    async def attach(self, ids: Iterable[str] | None = None) -> list[Job]:
        """Reattach to jobs from the job store: these ids, or every job not yet settled.

        Without ids: every job not yet terminal, and every terminal job whose last events were
        not stored yet (its watcher was killed in between), so watching them loses nothing.
        Jobs attached without ids are not refreshed until watched (no network here).
        """
        if ids is None:
            jobs = await self.client.jobs.list(settled=False, limit=None)
        else:
            jobs = [await self.client.jobs.get(job_id) for job_id in ids]
        self._track(jobs)
        return jobs

    # --- refreshing ---------------------------------------------------------------------------

    async def refresh(self, jobs: Iterable[Job] | None = None) -> list[Job]:
        """Refresh the status of many jobs: one listing per provider where it can.

        Returns:
            The jobs, with fresh ``record`` snapshots (also saved to the job store).
        """
        targets = self._targets(jobs)
        groups = self._groups(targets)
        async with anyio.create_task_group() as tg:
            for group in groups:
                tg.start_soon(self._refresh_group, group)
        return targets

    async def _refresh_group(self, jobs: list[Job]) -> None:
        records = await self._fetch(jobs[0].backend, jobs)
        await self._apply(jobs, records)

    def _groups(self, jobs: Sequence[Job]) -> list[list[Job]]:
        groups: dict[int, list[Job]] = {}
        for job in jobs:
            groups.setdefault(id(job.backend), []).append(job)
        return list(groups.values())

    async def _fetch(
        self, provider: Provider, jobs: Sequence[Job], errors: list[JobUpdate] | None = None
    ) -> dict[str, JobRecord]:
        """Fresh records of ``jobs``: one listing when it helps, then GETs for what it missed.

        Failures are appended to ``errors`` as updates (or raised when ``errors`` is None).
        """
        name = provider.name
        records: dict[str, JobRecord] = {}
        if not jobs:
            return records
        if provider.capabilities.list_jobs and len(jobs) > 1:
            limit = min(self._list_limit, len(jobs) + _LIST_SLACK)
            wanted = {job.id for job in jobs}
            try:
                listed = await self._call(name, lambda: provider.list_jobs(limit=limit))
            except ProviderError as exc:
                if errors is None:
                    raise
                errors.append(JobUpdate(kind="error", provider=name, error=exc))
                return records
            records = {record.id: record for record in listed if record.id in wanted}
        missing = [job for job in jobs if job.id not in records]

        async def get(job: Job) -> None:
            try:
                records[job.id] = await self._call(name, lambda: provider.get_job(job.id))
            except ProviderError as exc:
                if errors is None:
                    raise
                errors.append(
                    JobUpdate(kind="error", provider=name, job=job, status=job.status, error=exc)
                )

        async with anyio.create_task_group() as tg:
            for job in missing:
                tg.start_soon(get, job)
        return records

    async def _apply(
        self, jobs: Sequence[Job], records: Mapping[str, JobRecord]
    ) -> list[tuple[Job, JobStatus]]:
        """Set fresh records, save the changed ones in one transaction; return the changes."""
        changed: list[tuple[Job, JobStatus]] = []
        for job in jobs:
            record = records.get(job.id)
            if record is None or not _changed(job.record, record):
                if record is not None:
                    job.record = record
                continue
            changed.append((job, job.status))
            job.record = record
        store = self.client.store
        saves = [(job.local_id, job.record) for job, _ in changed if job.local_id]
        if store is not None and saves:
            with anyio.CancelScope(shield=True):  # keep what we learned even when cancelled
                await store.update_many(
                    [(local_id, record) for local_id, record in saves if local_id]
                )
        return changed

    # --- watching -----------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(
        self,
        jobs: Iterable[Job] | None = None,
        *,
        events: bool = True,
        after: Mapping[str, str | None] | None = None,
        buffer: int = 256,
    ) -> AsyncIterator[MemoryObjectReceiveStream[JobUpdate]]:
        """Watch jobs until each is terminal; yield a receive stream of ``JobUpdate``.

        For example:

            async with manager.watch(jobs) as updates:
                async for update in updates:
                    ...

        The stream ends when every job is terminal (or paused by a guard) and its events are
        read. Each event is saved to the job store (with the cursor) before it is delivered, so
        a watcher killed at any moment resumes exactly after the last event it saved. Leaving
        the block early stops watching; it never cancels a remote job.

        Args:
            jobs: The jobs (default: every job this manager submitted or attached).
            events: Read job events too (guards read them whatever this says).
            after: Replay saved events first: job id (backend or local) -> the last event id
                the caller processed (``None``: the whole saved log). For exactly-once
                processing across crashes, keep your own last event id and pass it here.
            buffer: Updates held for a slow consumer before the pollers wait for it.

        Raises:
            UsageError: A guard cannot work on one of the jobs (``BudgetGuard`` with no rate).
        """
        targets = self._targets(jobs)
        for guard in self.guards:
            for job in targets:
                guard.start(job)
        send, receive = anyio.create_memory_object_stream[JobUpdate](max_buffer_size=buffer)
        raised: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_all, targets, send, events, dict(after or {}))
            try:
                yield receive
            except Exception as exc:  # the caller's own error: re-raised as is, not grouped
                raised = exc
            finally:
                tg.cancel_scope.cancel()  # stop the pollers first, then close the stream
                receive.close()
        if raised is not None:
            raise raised

    async def _watch_all(
        self,
        jobs: list[Job],
        send: MemoryObjectSendStream[JobUpdate],
        events: bool,
        after: dict[str, str | None],
    ) -> None:
        sink = _Sink(send)
        async with send, anyio.create_task_group() as tg:
            for group in self._groups(jobs):
                tg.start_soon(self._poll, group, sink, events, after, name="rlft-poller")

    async def _recorded(self, jobs: Sequence[Job]) -> dict[str, StoredJob]:
        """Adopt unrecorded jobs into the store and read every job's row: two transactions."""
        store = self.client.store
        if store is None:
            return {}
        unrecorded = [job for job in jobs if job.local_id is None]
        if unrecorded:
            from rlft._store import scope_of

            scope = scope_of(unrecorded[0].backend)  # one provider instance per group
            adopted = await store.adopt_many([job.record for job in unrecorded], scope=scope)
            for job, row in zip(unrecorded, adopted, strict=True):
                job.attach_to(store, row.local_id)
        return await store.get_many([job.local_id for job in jobs if job.local_id])

    async def _start(
        self,
        job: Job,
        row: StoredJob | None,
        sink: _Sink,
        after: dict[str, str | None],
        want_events: bool,
    ) -> _Watched:
        """Restore the cursor and guard state, replay what was asked, report the status."""
        store = self.client.store
        watched = _Watched(job=job, cursor=self._cursors.get(_key(job)))
        if row is not None and row.event_cursor is not None:
            watched.cursor = row.event_cursor
        await sink(JobUpdate(kind="status", provider=job.provider, job=job, status=job.status))
        logged: list[JobEvent] = []
        replay_key = job.id if job.id in after else job.local_id
        if store is not None and job.local_id and (self.guards or replay_key in after):
            logged = await store.events(job.local_id)
        # Guards rebuild their state from the saved log, so a restarted watcher neither forgets
        # a streak nor trips twice; trips found while replaying are not acted on again.
        for event in logged:
            self._feed(job, event)
        if replay_key is not None and replay_key in after:
            start = after[replay_key]
            index = next((i for i, e in enumerate(logged) if e.id == start), None)
            for event in logged[index + 1 :] if index is not None else logged:
                await sink(
                    JobUpdate(
                        kind="event",
                        provider=job.provider,
                        job=job,
                        status=job.status,
                        event=event,
                        replayed=True,
                    )
                )
        if not want_events:
            watched.drained = True
        return watched

    def _feed(self, job: Job, event: JobEvent) -> list[tuple[Guard[Any], GuardTrip]]:
        """Show an event to every guard once; return the trips."""
        fed = self._fed.setdefault(_key(job), set())
        if event.id in fed:
            return []
        fed.add(event.id)
        trips = []
        for guard in self.guards:
            trip = guard.observe(job, event)
            if trip is not None:
                trips.append((guard, trip))
        return trips

    async def _act(
        self, watched: _Watched, guard: Guard[Any], trip: GuardTrip, sink: _Sink
    ) -> None:
        job = watched.job
        before = job.status
        with anyio.CancelScope(shield=True):  # a pause or cancel we started must finish
            done = await enforce(job, trip, fallback=guard.fallback)
        if done.taken == "paused":
            watched.guard_paused = True
        await sink(
            JobUpdate(kind="guard", provider=job.provider, job=job, status=job.status, trip=done)
        )
        if job.status is not before:
            await sink(
                JobUpdate(
                    kind="status",
                    provider=job.provider,
                    job=job,
                    status=job.status,
                    previous_status=before,
                )
            )

    async def _poll(
        self,
        jobs: list[Job],
        sink: _Sink,
        events: bool,
        after: dict[str, str | None],
    ) -> None:
        """The poller of one provider: refresh, read events, run guards, sleep; until done."""
        provider = jobs[0].backend
        name = provider.name
        has_events = provider.capabilities.list_events
        want_events = (events or bool(self.guards) or bool(self._reporter)) and has_events
        rows = await self._recorded(jobs)
        watched = [
            await self._start(job, rows.get(job.local_id or ""), sink, after, want_events)
            for job in jobs
        ]
        failures = 0
        while not sink.closed:
            active = [w for w in watched if not w.done]
            if not active:
                return
            errors: list[JobUpdate] = []
            polling = [w.job for w in active if not w.job.status.is_terminal]
            records = await self._fetch(provider, polling, errors)
            for job, previous in await self._apply(polling, records):
                await sink(
                    JobUpdate(
                        kind="status",
                        provider=name,
                        job=job,
                        status=job.status,
                        previous_status=previous,
                    )
                )
            for error in errors:
                await sink(error)
                if isinstance(error.error, NotFoundError) and error.job is not None:
                    for w in active:  # the job is gone from the backend: stop following it
                        if w.job is error.job:
                            w.done = True
            if want_events:
                async with anyio.create_task_group() as tg:
                    for w in active:
                        if not w.done:
                            tg.start_soon(self._pull, provider, w, sink, errors)
            for w in active:
                for guard in self.guards:
                    trip = guard.check(w.job)
                    if trip is not None:
                        await self._act(w, guard, trip, sink)
                settled = w.job.status.is_terminal or (
                    w.guard_paused and w.job.status is JobStatus.PAUSED
                )
                if settled and w.drained:
                    w.done = True
                    if not has_events and w.job.status.is_terminal:
                        await self._settle(w.job)  # no events to read: ended is settled
            failures = failures + 1 if errors else 0
            if all(w.done for w in watched):
                return
            delay = self._interval(provider) * min(2**failures, _MAX_BACKOFF)
            await self._clock.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - spreading polls

    async def _settle(self, job: Job) -> None:
        store = self.client.store
        if store is not None and job.local_id:
            with anyio.CancelScope(shield=True):
                await store.record_events(job.local_id, [], final=True)

    async def _pull(
        self, provider: Provider, watched: _Watched, sink: _Sink, errors: list[JobUpdate]
    ) -> None:
        """Read one job's new events; save them with the cursor, then deliver them."""
        job = watched.job
        # Events read after the job was seen settled are its last ones: then it is drained.
        settled = job.status.is_terminal or (
            watched.guard_paused and job.status is JobStatus.PAUSED
        )
        try:
            batch = await self._call(
                provider.name, lambda: provider.list_events(job.id, after=watched.cursor)
            )
        except ProviderError as exc:
            update = JobUpdate(
                kind="error", provider=provider.name, job=job, status=job.status, error=exc
            )
            errors.append(update)
            await sink(update)
            return
        store = self.client.store
        if (batch or settled) and store is not None and job.local_id:
            # Saved before delivery, shielded: the log and cursor never disagree. Read after
            # the end, they are the last ones: stored with them, the job is settled.
            with anyio.CancelScope(shield=True):
                await store.record_events(
                    job.local_id, batch, final=settled and job.status.is_terminal
                )
        if batch:
            watched.cursor = batch[-1].id
            self._cursors[_key(job)] = watched.cursor
        for event in batch:
            await sink(
                JobUpdate(
                    kind="event", provider=provider.name, job=job, status=job.status, event=event
                )
            )
            for guard, trip in self._feed(job, event):
                await self._act(watched, guard, trip, sink)
            if self._reporter is not None:
                await self._report(job, sink, await self._reporter.event(job, event))
        if settled:
            watched.drained = True
            if self._reporter is not None:
                await self._report(job, sink, await self._reporter.end(job))

    async def _report(self, job: Job, sink: _Sink, problems: list[TrackingError]) -> None:
        for problem in problems:  # a tracker failed: said once, the watch and the job go on
            await sink(
                JobUpdate(
                    kind="error", provider=job.provider, job=job, status=job.status, error=problem
                )
            )

    async def wait_all(
        self, jobs: Iterable[Job] | None = None, *, timeout: float | None = None
    ) -> list[Job]:
        """Wait until every job is terminal (or paused by a guard); return them.

        Failed and cancelled jobs are returned, not raised. Events are read only when guards
        need them, so waiting costs one listing per provider per poll where it can.

        Args:
            jobs: The jobs (default: every job this manager submitted or attached).
            timeout: Seconds, or ``None`` for no deadline. On timeout ``TimeoutError`` is
                raised; the jobs keep running.
        """
        targets = self._targets(jobs)
        with anyio.fail_after(timeout):
            async with self.watch(targets, events=False) as updates:
                async for _ in updates:
                    pass
        return targets

    async def cancel_all(self, jobs: Iterable[Job] | None = None) -> list[Job]:
        """Cancel every job not yet terminal on its backend. This one does stop remote jobs.

        Raises:
            ExceptionGroup: Some cancels failed; the others went through.
        """
        targets = self._targets(jobs)
        errors: list[RLFTError] = []

        async def cancel(job: Job) -> None:
            try:
                await self._call(job.provider, job.cancel)
            except RLFTError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for job in targets:
                if not job.status.is_terminal:
                    tg.start_soon(cancel, job)
        if errors:
            raise ExceptionGroup(f"{len(errors)} of {len(targets)} cancels failed", errors)
        return targets
