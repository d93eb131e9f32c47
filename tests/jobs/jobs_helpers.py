"""Shared helpers of the job-management tests: data, a client factory and scripted providers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio

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
    create_delay: ClassVar[float] = 0.0

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        cls = type(self)
        cls.creates_in_flight += 1
        cls.most_creates_in_flight = max(cls.most_creates_in_flight, cls.creates_in_flight)
        try:
            await anyio.sleep(cls.create_delay)
            record = await super().create_job(request)
        finally:
            cls.creates_in_flight -= 1
        if cls.lose_next_create:
            cls.lose_next_create = False
            raise ProviderConnectionError("read timed out", provider=self.name)
        return record

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        cls = type(self)
        cls.list_times.append(anyio.current_time())
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
        cls.create_delay = 0.0


class ExtraProviders:
    """A plugin registering the scripted backends above."""

    @hookimpl
    def rlft_register_providers(self, registry: ProviderRegistry) -> None:
        for name, cls in (
            ("fake2", "OtherFake"),
            ("nopause", "NoPauseFake"),
            ("nolist", "NoListFake"),
            ("flaky", "FlakyFake"),
        ):
            registry.add(
                ProviderSpec(name=name, settings=FakeSettings, factory=f"jobs_helpers:{cls}")
            )


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
