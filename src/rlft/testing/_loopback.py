"""Serve an ``httpx.Request -> httpx.Response`` handler over real HTTP on 127.0.0.1.

The loopback transport of ``FakeFineTuningServer``: the same handler that tests mount with
``httpx.MockTransport`` answers real sockets here, so a benchmark measures rlft's real HTTP stack
(connection pool, parsing) against the fake. Standard library only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

__all__ = ["LoopbackServer"]

Handler = Callable[[httpx.Request], httpx.Response]


class _Adapter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, Nagle off: otherwise headers and body leave in two segments and
    # each keep-alive request waits ~40 ms for a delayed ACK, which would swamp any measurement.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    owner: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def do_PUT(self) -> None:  # noqa: N802
        self._answer()

    def do_DELETE(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.owner
        if owner.admin and self.path.startswith("/__"):
            response = owner.control(self.command, self.path, body)
        else:
            host = self.headers.get("Host") or f"{owner.host}:{owner.port}"
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            response = owner.handler(request)
        content = response.read()
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class LoopbackServer:
    """A handler behind a ``ThreadingHTTPServer`` on loopback (use as a context manager).

    Args:
        handler: Answers each request (a ``FakeFineTuningServer``).
        host: The address to bind; an ephemeral port is chosen.
        prefix: The path the API lives under, appended to ``url``.

    Attributes:
        url: The base URL to give a provider (``http://127.0.0.1:PORT/v1``).
        admin: Whether ``/__seed``, ``/__stats`` and ``/__reset`` control the handler (for a
            benchmark driving a fake in another process).
    """

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", prefix: str = "") -> None:
        self.handler = handler
        self.admin = False
        adapter = type("Adapter", (_Adapter,), {"owner": self})
        self._server = ThreadingHTTPServer((host, 0), adapter)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self.url = f"http://{self.host}:{self.port}{prefix}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self) -> None:
        """Block until the server is shut down (``python -m`` mode)."""
        self._thread.join()

    def control(self, method: str, path: str, body: bytes) -> httpx.Response:
        """Answer an out-of-band ``/__`` request: seed jobs, read or reset the counters."""
        target: Any = self.handler
        if path == "/__stats":
            return httpx.Response(200, json=target.stats())
        if path == "/__reset" and method == "POST":
            target.reset_stats()
            return httpx.Response(200, json={})
        if path == "/__seed" and method == "POST":
            request = json.loads(body or b"{}")
            low, high = request.get("duration", (60.0, 60.0))
            ids = target.seed(
                int(request["count"]),
                duration=(float(low), float(high)),
                queue=float(request.get("queue", 0)),
            )
            return httpx.Response(200, json={"ids": ids})
        return httpx.Response(404, json={})
