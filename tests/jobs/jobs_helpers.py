"""Shared helpers of the job-management tests: data, a client factory and scripted providers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.lowlevel

import rlft
from rlft._models import Capabilities, JobRecord
from rlft._spec import CreateJobRequest, JobSpec
from rlft.exceptions import ProviderConnectionError, RateLimitError
from rlft.graders import StringCheck
from rlft.hookspecs import hookimpl
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft.testing import FakeProvider, FakeSettings

GRADER = StringCheck(
    name="label", input="{{ sample.output_text }}", reference="{{ item.label }}", operation="eq"
)


def rows(n: int = 8, *, label: str = "billing", offset: int = 0) -> rlft.Dataset:
    return rlft.Dataset.from_records(
        [
            {"messages": [{"role": "user", "content": f"ticket {offset + i}"}], "label": label}
            for i in range(n)
        ]
    )


def spec(name: str | None = None, *, n: int = 8, **hyperparameters: Any) -> JobSpec:
    return JobSpec(
        train=rows(n),
        grader=GRADER,
        name=name,
        hyperparameters=rlft.Hyperparameters(**hyperparameters),
    )


class OtherFake(FakeProvider):
    """A second backend, so tests can mix providers."""

    name: ClassVar[str] = "fake2"


class NoPauseFake(FakeProvider):
    """A backend that cannot pause (like Bedrock)."""

    name: ClassVar[str] = "nopause"
    capabilities: ClassVar[Capabilities] = FakeProvider.capabilities.model_copy(
        update={"pause_job": False, "resume_job": False}
    )


class NoListFake(FakeProvider):
    """A backend without a list endpoint: one GET per job."""

    name: ClassVar[str] = "nolist"
    capabilities: ClassVar[Capabilities] = FakeProvider.capabilities.model_copy(
        update={"list_jobs": False}
    )


class FlakyFake(FakeProvider):
    """Scripted failures, switched on by class attributes the tests set."""

    name: ClassVar[str] = "flaky"
    lose_next_create: ClassVar[bool] = False
    """The next create lands, then the answer is lost (a timeout after the job started)."""
    rate_limited_lists: ClassVar[int] = 0
    """The next N listings answer 429 with Retry-After."""
    retry_after: ClassVar[float] = 0.2
    list_times: ClassVar[list[float]] = []
    creates_in_flight: ClassVar[int] = 0
    most_creates_in_flight: ClassVar[int] = 0
    overlap: ClassVar[int] = 0
    """Hold each create until this many are in flight at once (then let every one through):
    proves the creates overlap by an event, not by a sleep that a busy machine can outlast."""
    _overlapped: ClassVar[anyio.Event | None] = None
    clock: ClassVar[Callable[[], float]] = anyio.current_time
    """What ``list_times`` records (a test's virtual clock, or the event loop's)."""

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        cls = type(self)
        cls.creates_in_flight += 1
        cls.most_creates_in_flight = max(cls.most_creates_in_flight, cls.creates_in_flight)
        try:
            if cls.overlap:
                if cls._overlapped is None:
                    cls._overlapped = anyio.Event()
                if cls.creates_in_flight >= cls.overlap:
                    cls._overlapped.set()
                await cls._overlapped.wait()
            record = await super().create_job(request)
        finally:
            cls.creates_in_flight -= 1
        if cls.lose_next_create:
            cls.lose_next_create = False
            raise ProviderConnectionError("read timed out", provider=self.name)
        return record

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        cls = type(self)
        cls.list_times.append(cls.clock())
        if cls.rate_limited_lists > 0:
            cls.rate_limited_lists -= 1
            raise RateLimitError(
                "slow down", provider=self.name, status_code=429, retry_after=cls.retry_after
            )
        return await super().list_jobs(limit=limit)

    @classmethod
    def reset(cls) -> None:
        cls.lose_next_create = False
        cls.rate_limited_lists = 0
        cls.list_times = []
        cls.creates_in_flight = cls.most_creates_in_flight = 0
        cls.overlap, cls._overlapped = 0, None
        cls.clock = anyio.current_time


class HoldingFake(FakeProvider):
    """A backend whose create waits for a line on stdin (for the two-process tests).

    It prints ``creating`` when a create begins; with ``HOLD_AFTER`` set, it creates the job
    first and then waits, so a kill lands after the job exists but before the store knows.
    """

    name: ClassVar[str] = "holding"

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        import os
        import sys

        import anyio.to_thread

        print("creating", flush=True)
        if os.environ.get("HOLD_AFTER"):
            record = await super().create_job(request)
            print(f"landed {record.id}", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            return record
        await anyio.to_thread.run_sync(sys.stdin.readline)
        return await super().create_job(request)


class ExtraProviders:
    """A plugin registering the scripted backends above."""

    @hookimpl
    def rlft_register_providers(self, registry: ProviderRegistry) -> None:
        for name, cls in (
            ("fake2", "OtherFake"),
            ("nopause", "NoPauseFake"),
            ("nolist", "NoListFake"),
            ("flaky", "FlakyFake"),
            ("holding", "HoldingFake"),
        ):
            registry.add(
                ProviderSpec(name=name, settings=FakeSettings, factory=f"jobs_helpers:{cls}")
            )


class VirtualClock:
    """A ``JobManager`` clock whose time moves only when something sleeps on it.

    Sleeping yields to the event loop, then sets the time to the end of the sleep, so what a
    test measures on it is what the manager scheduled, whatever the machine's load.
    """

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        until = self.time + seconds
        await anyio.lowlevel.checkpoint()
        self.time = max(self.time, until)


def make_client(
    store: Path | str | bool | None,
    *,
    provider: str = "fake",
    settings: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> rlft.Client:
    """A client on the fake backends with its own store (``False``: none)."""
    return rlft.Client(
        provider=provider,
        autoload=False,
        plugins=[ExtraProviders()],
        settings=dict(settings or {}),
        store=False if store is False else (None if store in (None, True) else Path(str(store))),
        cwd=cwd,
    )
