"""One door to AWS: boto3 clients called in worker threads, under one limiter and one error map.

boto3 is blocking, so each call runs in ``anyio.to_thread.run_sync`` under the provider's own
``CapacityLimiter`` (it can't take all of anyio's default threads), inside
``map_bedrock_errors()``. botocore does the retrying (standard mode, configured explicitly);
nothing above it retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import boto3
import botocore.config

from rlft import __version__
from rlft.exceptions import ConfigurationError
from rlft.provider import register_secret
from rlft_providers.bedrock._errors import map_bedrock_errors

__all__ = ["Aws"]

T = TypeVar("T")


class Aws:
    """Lazily built boto3 clients of one session, called off the event loop.

    Args:
        session: The boto3 session (credentials and region come from it).
        max_attempts: botocore's total attempts per call, standard retry mode.
        max_concurrency: Threads this provider may use at once.
    """

    def __init__(
        self,
        *,
        session: boto3.Session,
        region: str | None = None,
        max_attempts: int,
        max_concurrency: int,
    ) -> None:
        self.session = session
        self.region = region or session.region_name
        self.config = botocore.config.Config(
            # total_max_attempts counts the first try; Config's max_attempts would count retries.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            user_agent_extra=f"rlft/{__version__}",
            connect_timeout=10,
            read_timeout=60,
        )
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; clients are

    def client(self, service: str) -> Any:
        """The cached client of ``service`` (tests attach a ``Stubber`` to it)."""
        with self._lock:
            if service not in self._clients:
                with map_bedrock_errors():
                    make: Any = self.session.client  # the stubs want a Literal name
                    self._clients[service] = make(
                        service, region_name=self.region, config=self.config
                    )
                self._register_credentials()
                # Refreshed credentials (assume-role, SSO) are registered before each signing.
                self._clients[service].meta.events.register(
                    "before-sign", self._register_credentials
                )
            client = self._clients[service]
        if service == "bedrock" and "RFTConfig" not in client.meta.service_model.shape_names:
            import botocore

            raise ConfigurationError(
                f"botocore {botocore.__version__} predates Bedrock reinforcement fine-tuning "
                "(no RFTConfig in its bedrock model); upgrade it: pip install -U 'rlft[bedrock]' "
                "(rlft is tested with boto3/botocore 1.44.8)"
            )
        return client

    def _register_credentials(self, **_: Any) -> None:
        # The secret key and session token of boto3's chain: masked in errors, logs and store.
        credentials = self.session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            register_secret(frozen.secret_key)
            register_secret(frozen.token)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` in a worker thread under the limiter and the error map."""
        with map_bedrock_errors():
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    async def call(self, service: str, operation: str, /, **params: Any) -> Any:
        """One API call: ``await aws.call("bedrock", "get_model_customization_job", ...)``."""

        def invoke() -> Any:
            return getattr(self.client(service), operation)(**params)

        return await self.run(invoke)

    async def paginate(
        self,
        service: str,
        operation: str,
        key: str,
        /,
        *,
        limit: int,
        where: Callable[[Any], bool] | None = None,
        **params: Any,
    ) -> list[Any]:
        """Walk a paginator: up to ``limit`` items of result key ``key`` that pass ``where``."""

        def walk() -> list[Any]:
            items: list[Any] = []
            paginator = self.client(service).get_paginator(operation)
            for page in paginator.paginate(**params):
                items.extend(item for item in page.get(key, []) if where is None or where(item))
                if len(items) >= limit:
                    break
            return items[:limit]

        return await self.run(walk)

    async def wait(self, service: str, waiter: str, /, **params: Any) -> None:
        """Block (in a thread) on a botocore waiter such as Lambda's ``function_active_v2``."""

        def block() -> None:
            self.client(service).get_waiter(waiter).wait(**params)

        await self.run(block)

    def close(self) -> None:
        """Close every client's connection pool. Idempotent."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
