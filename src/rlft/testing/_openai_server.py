"""A loopback server speaking the OpenAI-compatible fine-tuning API, for tests and benchmarks.

Standard library only, bound to 127.0.0.1. Jobs follow the clock: ``queued`` for ``queue``
seconds, then ``running`` with a metrics event per step, then ``succeeded`` after
``duration`` seconds (unless cancelled or paused). It counts every request by route, so a
benchmark can ask how many requests a status refresh cost:

    with FakeOpenAIServer() as server:                  # a thread in this process
        server.seed(1000, duration=(5, 30))
        client = rlft.Client(provider="openai", settings={"base_url": server.url, "api_key": "x"})
        ...
        server.stats()                       # {"total": 11, "GET /fine_tuning/jobs": 11}

``python -m rlft.testing._openai_server`` runs it as its own process and prints its URL.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeOpenAIServer"]

_STEPS = 10


@dataclass
class _Job:
    number: int
    created: float
    duration: float
    queue: float
    model: str
    metadata: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    """``cancelled`` or ``paused``: the status it was stopped in."""
    stopped_at: float | None = None

    @property
    def id(self) -> str:
        return f"ftjob-{self.number:06d}"

    def status(self, now: float) -> str:
        if self.stopped is not None:
            return self.stopped
        elapsed = now - self.created
        if elapsed >= self.duration:
            return "succeeded"
        return "running" if elapsed >= self.queue else "queued"

    def clock(self, now: float) -> float:
        return min(now, self.stopped_at) if self.stopped_at is not None else now

    def steps_done(self, now: float) -> int:
        elapsed = self.clock(now) - self.created - self.queue
        if elapsed <= 0:
            return 0
        return min(_STEPS, int(elapsed / max(self.duration - self.queue, 1e-9) * _STEPS))

    def body(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": int(self.created),
            "finished_at": int(self.created + self.duration) if status == "succeeded" else None,
            "fine_tuned_model": f"ft:{self.model}:rlft:{self.id}"
            if status == "succeeded"
            else None,
            "status": status,
            "metadata": self.metadata,
            "error": None,
            "method": {"type": "reinforcement"},
        }

    def events(self, now: float) -> list[dict[str, Any]]:
        """Oldest first."""
        found = [_event(self, 0, "Created fine-tuning job", self.created)]
        per_step = (self.duration - self.queue) / _STEPS
        for step in range(1, self.steps_done(now) + 1):
            reward = 0.2 + 0.6 * step / _STEPS
            data = {
                "step": step,
                "total_steps": _STEPS,
                "scores": {"train_reward_mean": reward, "valid_reward_mean": reward - 0.05},
            }
            at = self.created + self.queue + step * per_step
            found.append(_event(self, step, f"Step {step}/{_STEPS}", at, data))
        status = self.status(now)
        if status in ("succeeded", "cancelled", "paused"):
            at = self.stopped_at or self.created + self.duration
            found.append(_event(self, _STEPS + 1, f"Job {status}", at))
        return found


def _event(
    job: _Job, number: int, message: str, at: float, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{job.number:06d}-{number:03d}",
        "created_at": int(at),
        "level": "info",
        "message": message,
        "type": "metrics" if data else "message",
    }
    if data:
        event["data"] = data
    return event


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """A cursor page of ``items`` (already in list order): ``after`` is the last id seen."""
    limit = int(query.get("limit", ["20"])[0])
    after = query.get("after", [None])[0]
    start = 0
    if after is not None:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), len(items))
    page = items[start : start + limit]
    return {"object": "list", "data": page, "has_more": start + limit < len(items)}


class _State:
    def __init__(self, job_duration: float) -> None:
        self.job_duration = job_duration
        self.lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.order: list[_Job] = []
        self.files = 0
        self.counts: Counter[str] = Counter()

    def add(self, *, duration: float, queue: float, model: str, metadata: dict[str, str]) -> _Job:
        job = _Job(
            number=len(self.order) + 1,
            created=time.time(),
            duration=duration,
            queue=min(queue, duration),
            model=model,
            metadata=metadata,
        )
        self.jobs[job.id] = job
        self.order.append(job)
        return job

    def seed(self, count: int, duration: tuple[float, float], queue: float) -> list[str]:
        low, high = duration
        jobs = [
            self.add(
                duration=low + (high - low) * i / max(count - 1, 1),
                queue=queue,
                model="o4-mini-2025-04-16",
                metadata={"seed": str(i)},
            )
            for i in range(count)
        ]
        return [job.id for job in jobs]


_JOB = re.compile(r"^/fine_tuning/jobs/([^/]+)(?:/(cancel|pause|resume|events|checkpoints))?$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, Nagle off: otherwise headers and body leave in two segments and
    # each keep-alive request waits ~40 ms for a delayed ACK, which would swamp any measurement.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    state: _State
    prefix: str

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.removeprefix(self.prefix) or "/"
        query = parse_qs(url.query)
        body = self._body()
        state = self.state
        if path.startswith("/__"):
            self._admin(method, path, body)
            return
        route = _JOB.sub(lambda m: "/fine_tuning/jobs/{id}" + (f"/{m[2]}" if m[2] else ""), path)
        with state.lock:
            state.counts[f"{method} {route}"] += 1
            state.counts["total"] += 1
            now = time.time()
            status, answer = self._answer(method, path, query, body, now)
        self._send(status, answer)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, now: float
    ) -> tuple[int, Any]:
        state = self.state
        if path == "/files" and method == "POST":
            state.files += 1
            return 200, {"id": f"file-{state.files:04d}", "object": "file", "status": "processed"}
        if path.startswith("/files/") and method == "GET":
            return 200, {"id": path.split("/")[2], "object": "file", "status": "processed"}
        if path == "/fine_tuning/jobs" and method == "GET":
            wanted = {
                key[len("metadata[") : -1]: values[0]
                for key, values in query.items()
                if key.startswith("metadata[")
            }
            jobs = [
                job
                for job in reversed(state.order)
                if all(job.metadata.get(k) == v for k, v in wanted.items())
            ]
            return 200, _page([job.body(now) for job in jobs], query)
        if path == "/fine_tuning/jobs" and method == "POST":
            request = json.loads(body or b"{}")
            metadata = {str(k): str(v) for k, v in (request.get("metadata") or {}).items()}
            model = request.get("model") or "m"
            duration = state.job_duration
            created = state.add(
                duration=duration, queue=duration / 10, model=model, metadata=metadata
            )
            return 200, created.body(now)
        match = _JOB.match(path)
        job = state.jobs.get(match[1]) if match else None
        if match is None or job is None:
            error = {"message": f"no such path or job: {path}", "type": "invalid_request_error"}
            return 404, {"error": error}
        action = match[2]
        if action is None and method == "GET":
            return 200, job.body(now)
        if action == "events":
            return 200, _page(list(reversed(job.events(now))), query)
        if action == "checkpoints":
            return 200, {"object": "list", "data": [], "has_more": False}
        if action in ("cancel", "pause", "resume") and method == "POST":
            current = job.status(now)
            if action == "resume" and current == "paused":
                job.created += now - (job.stopped_at or now)  # resume where it stopped
                job.stopped = job.stopped_at = None
            elif action != "resume" and current in ("queued", "running"):
                job.stopped = "cancelled" if action == "cancel" else "paused"
                job.stopped_at = now
            else:
                message = f"job {job.id} is {current}: cannot {action}"
                return 400, {"error": {"message": message, "type": "invalid_request_error"}}
            return 200, job.body(now)
        return 404, {"error": {"message": f"{method} {path} is not supported here"}}

    def _admin(self, method: str, path: str, body: bytes) -> None:
        state = self.state
        with state.lock:
            if path == "/__stats":
                self._send(200, dict(state.counts))
                return
            if path == "/__reset" and method == "POST":
                state.counts.clear()
                self._send(200, {})
                return
            if path == "/__seed" and method == "POST":
                request = json.loads(body or b"{}")
                low, high = request.get("duration", (60.0, 60.0))
                ids = state.seed(int(request["count"]), (low, high), float(request.get("queue", 0)))
                self._send(200, {"ids": ids})
                return
        self._send(404, {})


class FakeOpenAIServer:
    """The server, run in a background thread of this process (use as a context manager).

    Args:
        prefix: The path the API lives under (``/v1``).
        job_duration: Seconds a created job takes to succeed (a tenth of it queued).
    """

    def __init__(self, *, prefix: str = "/v1", job_duration: float = 2.0) -> None:
        state = _State(job_duration)
        handler = type("Handler", (_Handler,), {"state": state, "prefix": prefix})
        self._state = state
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}{prefix}"
        """The base URL to give a provider (``http://127.0.0.1:PORT/v1``)."""

    def __enter__(self) -> FakeOpenAIServer:
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

    def seed(
        self, count: int, *, duration: tuple[float, float] = (60.0, 60.0), queue: float = 0.0
    ) -> list[str]:
        """Add ``count`` jobs finishing ``duration`` seconds from now (spread evenly)."""
        with self._state.lock:
            return self._state.seed(count, duration, queue)

    def stats(self) -> dict[str, int]:
        """Requests served, by ``"METHOD route"``, and ``"total"``."""
        with self._state.lock:
            return dict(self._state.counts)

    def reset_stats(self) -> None:
        """Start counting from zero."""
        with self._state.lock:
            self._state.counts.clear()


def main() -> None:
    """Run the server as its own process; print its base URL, serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", default="/v1")
    args = parser.parse_args()
    server = FakeOpenAIServer(prefix=args.prefix)
    print(server.url, flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
