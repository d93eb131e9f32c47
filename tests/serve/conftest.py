"""Fixtures for `rlft serve`: a project on the fake backend, the app in-process and on loopback."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rlft.serve import ApiKey, ServeOptions

HERE = Path(__file__).parent
# OpenAI's specs and samples, vendored once with their provenance for every test that uses them.
OPENAI_UPSTREAM = HERE.parent / "providers" / "openai" / "upstream"
KEY_A = "sk-alice-0123456789"
KEY_B = "sk-bob-0123456789"
ADMIN = "sk-admin-0123456789"
GRADER = {
    "type": "string_check",
    "name": "label",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.label }}",
    "operation": "eq",
}
METHOD = {"type": "reinforcement", "reinforcement": {"grader": GRADER}}


def rows(count: int = 12) -> bytes:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"ticket {i}"}], "label": "billing"})
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def project(folder: Path, *, steps: int = 4, extra: str = "") -> Path:
    """A folder with an rlft.toml choosing the fake backend, its jobs kept on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{folder / "state"}"\nsteps = {steps}\n'
        f"checkpoint_every = 1\n{extra}",
        encoding="utf-8",
    )
    return folder


def options(folder: Path, **changes: Any) -> ServeOptions:
    values: dict[str, Any] = {
        "cwd": folder,
        "home": folder / "serve",
        "keys": (
            ApiKey.from_secret(KEY_A),
            ApiKey.from_secret(KEY_B),
            ApiKey.from_secret(ADMIN, admin=True),
        ),
        "poll_interval": 0.05,
    }
    values.update(changes)
    return ServeOptions(**values)


@asynccontextmanager
async def asgi_client(app: Any, key: str | None = KEY_A) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (its lifespan running) behind httpx's ASGI transport."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            yield client


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """The app on a real loopback uvicorn server; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert server.ready.wait(30), "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_until(check: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: last value {value!r}")
        time.sleep(every)


_SPEC = json.loads((OPENAI_UPSTREAM / "openai_openapi.pruned.json").read_text())
_REGISTRY = Registry().with_resource(
    "urn:openai", Resource.from_contents(_SPEC, default_specification=DRAFT202012)
)


def validate(body: Any, schema: str, *, open_status: bool = False) -> None:
    """Check a response body against OpenAI's schema ``schema`` (2.3.0, vendored)."""
    ref: dict[str, Any] = {"$ref": f"urn:openai#/components/schemas/{schema}"}
    if open_status and schema == "FineTuningJob":
        # OpenAI's own /pause answers "paused", outside the enum (reference/openai_azure.md §1.4).
        body = {**body, "status": "running" if body["status"] == "paused" else body["status"]}
    jsonschema.Draft202012Validator(ref, registry=_REGISTRY).validate(body)


@pytest.fixture(autouse=True)
def _serve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLFT_SERVE_API_KEYS", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
