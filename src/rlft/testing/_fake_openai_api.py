"""One fake of the OpenAI-compatible fine-tuning API, for tests and benchmarks.

``FakeFineTuningServer`` is a single request handler, ``httpx.Request -> httpx.Response``, with
the state of a fine-tuning service behind it: files, jobs, events and checkpoints. It is reached
through any transport (httpx's own design: one handler, many transports):

- in process: ``httpx.MockTransport(server)``, or a respx side effect
  (``respx_mock.route(host=...).mock(side_effect=server)``);
- over loopback HTTP: ``with server.serve() as running: running.url`` (a thread of this
  process), or ``python -m rlft.testing._fake_openai_api`` (its own process; prints its URL).

Jobs move when told (``advance``), or follow the clock when ``job_duration`` is set (and for
jobs added with ``seed``): queued for a tenth of the duration, then one metrics event per step,
then ``succeeded``. The fake speaks OpenAI's dialect or Azure's (statuses, event levels, error
envelope, request-id header, ``api-version``; on Azure's classic route no ``metadata`` on
create and no metadata filter on listing, as in its 2025-04-01-preview spec). It counts every
request by route, so a benchmark can ask what a refresh cost (``stats``).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Literal

import httpx

if TYPE_CHECKING:
    from rlft.testing._loopback import LoopbackServer

__all__ = ["FakeFineTuningServer", "Flavour"]

Flavour = Literal["openai", "azure"]
"""Whose dialect the fake speaks: status words, event levels, error envelope, headers."""

_JOB = re.compile(r"^/fine_tuning/jobs/([^/]+)(?:/(cancel|pause|resume|events|checkpoints))?$")
_FILE = re.compile(r"^/files/([^/]+)(/content)?$")
_GRADERS = re.compile(r"^/fine_tuning/alpha/graders/(run|validate)$")
_TERMINAL = {"succeeded", "failed", "cancelled"}
_AZURE_CODES = {401: "unauthorized", 403: "forbidden", 404: "notFound", 409: "conflict"}


@dataclass
class _Schedule:
    """When a clock-driven job starts, how long it queues, and when it is done."""

    start: float
    queue: float
    duration: float
    paused_at: float | None = None
    due: float = 0.0
    """When the job next changes; until then a catch-up costs one comparison."""


@dataclass
class _Job:
    body: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    schedule: _Schedule | None = None


class FakeFineTuningServer:
    """An in-memory OpenAI-compatible fine-tuning service behind one request handler.

    Args:
        prefix: The path before ``/files`` and ``/fine_tuning`` (``"/v1"``, ``"/openai"``).
        flavour: ``"openai"`` or ``"azure"``: status words, event levels, error envelope.
        api_version: When set, every request must carry ``?api-version=<this>`` (Azure's
            classic route, which also has no job ``metadata``).
        authorized: Decides whether a request's credentials are good (default: any
            ``Authorization`` or ``api-key`` header).
        total_steps: Training steps before a job succeeds.
        file_polls: ``GET /files/{id}`` answers before an upload reads ``processed``; ``0``
            makes an upload ``processed`` at once.
        grade: Scores ``graders/run`` calls as ``(grader, sample, item) -> reward``.
        job_duration: When set, created jobs follow the clock and succeed after this many
            seconds instead of waiting for ``advance``.
        clock: Seconds since the epoch (``time.time``); also stamps ``created_at``.

    Attributes:
        requests: Every request received, in order.
        fail_next: Responses to return (in order) before handling anything else, to script
            errors: ``server.fail_next.append(httpx.Response(500))``.
    """

    def __init__(
        self,
        *,
        prefix: str = "/v1",
        flavour: Flavour = "openai",
        api_version: str | None = None,
        authorized: Callable[[httpx.Request], bool] | None = None,
        total_steps: int = 4,
        file_polls: int = 1,
        grade: Callable[[Mapping[str, Any], str, Mapping[str, Any]], float] | None = None,
        job_duration: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.flavour = flavour
        self.api_version = api_version
        self.total_steps = total_steps
        self.file_polls = file_polls
        self.job_duration = job_duration
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.requests: list[httpx.Request] = []
        self.fail_next: list[httpx.Response] = []
        self._authorized = authorized or _has_credentials
        self._grade = grade or (lambda grader, sample, item: 1.0)
        self._clock = clock
        self._ids = itertools.count(1)
        self._file_reads: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._next_due = float("inf")  # the earliest time a clock-driven job changes
        # The loopback adapter serves requests from several threads.
        self._lock = threading.RLock()

    @property
    def classic(self) -> bool:
        """Azure's classic route: ``api-version`` required, no job ``metadata``."""
        return self.flavour == "azure" and self.api_version is not None

    # --- helpers tests call -------------------------------------------------------------------

    def advance(self, job_id: str, steps: int = 1) -> dict[str, Any]:
        """Move a job forward: queued -> running, then one training step per call."""
        with self._lock:
            job = self.jobs[job_id]
            for _ in range(steps):
                self._step(job)
            return job.body

    def fail(self, job_id: str, message: str = "too many grader errors") -> None:
        """Fail a job as the service would (``error`` set, status ``failed``)."""
        with self._lock:
            job = self.jobs[job_id]
            job.body["error"] = {"code": "grader_errors", "message": message, "param": None}
            self._set_status(job, "failed")

    def seed(
        self,
        count: int,
        *,
        duration: tuple[float, float] = (60.0, 60.0),
        queue: float = 0.0,
        model: str = "o4-mini-2025-04-16",
    ) -> list[str]:
        """Add ``count`` clock-driven jobs finishing ``duration`` seconds from now (spread
        evenly from the first to the second value), without any request being counted."""
        low, high = duration
        ids = []
        with self._lock:
            for index in range(count):
                length = low + (high - low) * index / max(count - 1, 1)
                job = self._new_job(
                    {"model": model, "training_file": "file-seed", "metadata": {"seed": str(index)}}
                )
                job.schedule = _Schedule(self._clock(), min(queue, length), length)
                self._catch_up(job)
                self._next_due = min(self._next_due, job.schedule.due)
                ids.append(job.body["id"])
        return ids

    def stats(self) -> dict[str, int]:
        """Requests served, by ``"METHOD route"`` (ids as ``{id}``), and ``"total"``."""
        with self._lock:
            return dict(self._counts)

    def reset_stats(self) -> None:
        """Start counting requests from zero."""
        with self._lock:
            self._counts.clear()

    def serve(self, *, host: str = "127.0.0.1") -> LoopbackServer:
        """This handler behind a loopback HTTP server (use as a context manager).

        Returns:
            A ``LoopbackServer``; its ``url`` (``http://127.0.0.1:PORT/v1``) is the base URL to
            give a provider.
        """
        from rlft.testing._loopback import LoopbackServer

        return LoopbackServer(self, host=host, prefix=self.prefix)

    # --- the handler --------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            path = request.url.path
            route = _JOB.sub(
                lambda m: "/fine_tuning/jobs/{id}" + (f"/{m[2]}" if m[2] else ""),
                path.removeprefix(self.prefix),
            )
            self._counts[f"{request.method} {route}"] += 1
            self._counts["total"] += 1
            if self.fail_next:
                return self.fail_next.pop(0)
            if self.api_version is not None and request.url.params.get("api-version") != (
                self.api_version
            ):
                return self._error(404, "Resource not found (api-version missing or unsupported)")
            if not self._authorized(request):
                return self._error(401, "Incorrect API key provided", code="invalid_api_key")
            if not path.startswith(self.prefix + "/"):
                return self._error(404, f"Invalid URL ({request.method} {path})")
            now = self._clock()
            if now >= self._next_due:  # one comparison while no job is due
                due = float("inf")
                for job in self.jobs.values():
                    if job.schedule is not None:
                        if now >= job.schedule.due:
                            self._catch_up(job)
                        due = min(due, job.schedule.due)
                self._next_due = due
            return self._route(request, path[len(self.prefix) :])

    def _route(self, request: httpx.Request, path: str) -> httpx.Response:
        method = request.method
        if path == "/files" and method == "POST":
            return self._upload(request)
        if (match := _FILE.match(path)) and method == "GET":
            return self._file(match.group(1), content=bool(match.group(2)))
        if path == "/fine_tuning/jobs":
            return self._create(request) if method == "POST" else self._list_jobs(request)
        if match := _GRADERS.match(path):
            return self._graders(match.group(1), request)
        if match := _JOB.match(path):
            job = self.jobs.get(match.group(1))
            if job is None:
                return self._error(404, f"No fine-tuning job found with id {match.group(1)}")
            action = match.group(2)
            if action is None:
                return self._json(job.body)
            if action in ("events", "checkpoints"):
                items = job.events if action == "events" else job.checkpoints
                return self._page(list(reversed(items)), request)
            return self._act(job, action)
        return self._error(404, f"Invalid URL ({method} {path})")

    def _upload(self, request: httpx.Request) -> httpx.Response:
        fields, files = _multipart(request)
        if fields.get("purpose") != "fine-tune" or "file" not in files:
            return self._error(400, "purpose must be fine-tune", param="purpose")
        filename, content = files["file"]
        file_id = f"file-{next(self._ids):06d}"
        waiting = "uploaded" if self.flavour == "openai" else "pending"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(self._clock()),
            "filename": filename,
            "purpose": "fine-tune",
            "status": waiting if self.file_polls > 0 else "processed",
        }
        self.contents[file_id] = content
        return self._json(self.files[file_id], status=200 if self.flavour == "openai" else 201)

    def _file(self, file_id: str, *, content: bool) -> httpx.Response:
        if file_id not in self.files:
            return self._error(404, f"No such File object: {file_id}")
        if content:
            return httpx.Response(200, content=self.contents[file_id])
        reads = self._file_reads[file_id] = self._file_reads.get(file_id, 0) + 1
        if reads >= self.file_polls and self.files[file_id]["status"] in ("uploaded", "pending"):
            self.files[file_id]["status"] = "processed"
        return self._json(self.files[file_id])

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        for required in ("model", "training_file", "method"):
            if not body.get(required):
                return self._error(
                    400, f"Missing required parameter: '{required}'.", param=required
                )
        if self.classic and "metadata" in body:
            # FineTuningJobCreation (2025-04-01-preview) has no `metadata`.
            return self._error(400, "Unrecognized request argument: metadata", param="metadata")
        for param in ("training_file", "validation_file"):
            if body.get(param) and body[param] not in self.files:
                return self._error(400, f"invalid file id {body[param]}", param=param)
        method = body["method"]
        if method.get("type") != "reinforcement" or "grader" not in method.get("reinforcement", {}):
            return self._error(400, "method.reinforcement.grader is required", param="method")
        job = self._new_job(body)
        if self.job_duration is not None:
            duration = self.job_duration
            job.schedule = _Schedule(self._clock(), duration / 10, duration)
            self._next_due = 0.0
        return self._json(job.body, status=200 if self.flavour == "openai" else 201)

    def _new_job(self, body: dict[str, Any]) -> _Job:
        job_id = f"ftjob-{next(self._ids):06d}"
        suffix_key = "user_provided_suffix" if self.flavour == "openai" else "suffix"
        job = _Job(
            body={
                "id": job_id,
                "object": "fine_tuning.job",
                "created_at": int(self._clock()),
                "model": body["model"],
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file"),
                "status": "validating_files" if self.flavour == "openai" else "pending",
                "fine_tuned_model": None,
                "finished_at": None,
                "error": None,
                "result_files": [],
                "seed": body.get("seed", 42),
                suffix_key: body.get("suffix"),
                "method": body.get("method", {"type": "reinforcement"}),
                "hyperparameters": None,
                "trained_tokens": None,
                "estimated_finish": None,
                "integrations": body.get("integrations", []),
            }
        )
        if not self.classic:
            job.body["metadata"] = body.get("metadata")
        self.jobs[job_id] = job
        self._event(job, "Created fine-tuning job")
        return job

    def _list_jobs(self, request: httpx.Request) -> httpx.Response:
        # Only OpenAI documents a metadata filter; Azure (classic and v1) lists everything.
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in request.url.params.items()
            if self.flavour == "openai" and key.startswith("metadata[") and key.endswith("]")
        }
        jobs = [
            job.body
            for job in reversed(self.jobs.values())
            if all((job.body.get("metadata") or {}).get(k) == v for k, v in wanted.items())
        ]
        return self._page(jobs, request)

    def _act(self, job: _Job, action: str) -> httpx.Response:
        status = job.body["status"]
        allowed = {"pause": {"running"}, "resume": {"paused"}}.get(action)
        if allowed is not None and status not in allowed:
            return self._error(
                400 if self.flavour == "openai" else 409,
                f"Cannot {action} a job with status {status}",
                code="invalid_state" if self.flavour == "openai" else "unexpectedEntityState",
            )
        if action == "cancel":
            if status in _TERMINAL:
                return self._error(400, f"Job has already {status}", code="invalid_state")
            self._set_status(job, "cancelled")
        elif action == "pause":
            self._checkpoint(job)
            self._set_status(job, "paused")
            if job.schedule is not None:
                job.schedule.paused_at = self._clock()
                job.schedule.due = float("inf")
        else:
            self._set_status(job, "queued" if self.flavour == "openai" else "resuming")
            schedule = job.schedule
            if schedule is not None and schedule.paused_at is not None:
                schedule.start += self._clock() - schedule.paused_at  # resume where it stopped
                schedule.paused_at = None
                schedule.due = self._next_due = 0.0
        return self._json(job.body)

    def _graders(self, action: str, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        grader = body.get("grader")
        if not isinstance(grader, dict) or not grader.get("type") or not grader.get("name"):
            return self._error(400, "Invalid grader: 'name' and 'type' are required", "grader")
        if action == "validate":
            return self._json({"grader": grader})
        sample = body.get("model_sample")
        if not isinstance(sample, str):
            return self._error(400, "model_sample must be a string", param="model_sample")
        reward = self._grade(grader, sample, body.get("item") or {})
        flags = dict.fromkeys(("formula_parse_error", "sample_parse_error", "other_error"), False)
        return self._json(
            {
                "reward": reward,
                "metadata": {
                    "name": grader["name"],
                    "type": grader["type"],
                    "errors": {**flags, "invalid_variable_error": False},
                    "execution_time": 0.01,
                    "scores": {},
                    "token_usage": None,
                    "sampled_model_name": None,
                },
                "sub_rewards": {},
                "model_grader_token_usage_per_model": {},
            }
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def _step(self, job: _Job) -> None:
        status = job.body["status"]
        if status in _TERMINAL or status in ("paused", "pausing"):
            return
        if status != "running":
            self._set_status(job, "running")
            return
        job.step += 1
        self._metrics_event(job)
        if job.step % 2 == 0:
            self._checkpoint(job)
        if job.step >= self.total_steps:
            self._succeed(job)

    def _catch_up(self, job: _Job) -> None:
        """Bring a clock-driven job to where its schedule says it is now."""
        schedule = job.schedule
        if schedule is None:
            return
        if schedule.paused_at is not None:
            schedule.due = float("inf")
            return
        elapsed = self._clock() - schedule.start
        run = max(schedule.duration - schedule.queue, 1e-9)
        if job.body["status"] in _TERMINAL | {"paused"}:
            schedule.due = float("inf")
            return
        if elapsed < schedule.queue:
            schedule.due = schedule.start + schedule.queue
            return
        if elapsed >= schedule.duration:
            target = self.total_steps
        else:
            target = min(self.total_steps, int((elapsed - schedule.queue) / run * self.total_steps))
        if job.body["status"] != "running":
            self._set_status(job, "running")
        while job.step < target and job.body["status"] == "running":
            self._step(job)
        next_step = schedule.queue + (job.step + 1) * run / self.total_steps
        schedule.due = schedule.start + min(next_step, schedule.duration)

    def _set_status(self, job: _Job, status: str) -> None:
        job.body["status"] = status
        if status in _TERMINAL:
            job.body["finished_at"] = int(self._clock())
        self._event(job, f"Job {status}")

    def _event(self, job: _Job, message: str, **extra: Any) -> None:
        level = extra.pop("level", "info")
        if level == "warn" and self.flavour == "azure":
            level = "warning"  # Azure's word (reference/openai_azure.md §5.7)
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{next(self._ids):06d}",
                "created_at": int(self._clock()),
                "level": level,
                "message": message,
                "type": extra.pop("type", "message"),
                **extra,
            }
        )

    def _metrics_event(self, job: _Job) -> None:
        step, total = job.step, self.total_steps
        reward = round(0.2 + 0.6 * step / total, 4)
        data = {
            "step": step,
            "total_steps": total,
            "scores": {
                "train_reward_mean": reward,
                "valid_reward_mean": reward - 0.05,
                "graders": [{"name": "label", "type": "string_check", "train_reward_mean": reward}],
            },
            "errors": {
                "graders": [
                    {
                        "name": "label",
                        "type": "string_check",
                        "train_sample_parse_error_mean": 0.0,
                        "train_other_error_mean": 0.0,
                    }
                ]
            },
            "usage": {"samples": {"train_reasoning_tokens_mean": 100.0 * step}},
            "timing": {"step": {"full_iteration": 30.0}},
        }
        message = f"Step {step}/{total}, train mean reward={reward:.2f}"
        self._event(job, message, type="metrics", data=data)
        if step == 1:
            self._event(job, "Grader latency is high", level="warn")

    def _checkpoint(self, job: _Job) -> None:
        step = job.step
        job.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt_{next(self._ids):06d}",
                "created_at": int(self._clock()),
                "fine_tuned_model_checkpoint": f"ft:{job.body['model']}:rlft::{job.body['id']}"
                f":ckpt-step-{step}",
                "fine_tuning_job_id": job.body["id"],
                "step_number": step,
                "metrics": {"step": float(step), "valid_reward_mean": 0.5, "train_loss": 0.1},
            }
        )

    def _succeed(self, job: _Job) -> None:
        result_id = f"file-{next(self._ids):06d}"
        csv = b"step,train_reward_mean\n" + b"".join(
            f"{s},{0.2 + 0.6 * s / self.total_steps:.4f}\n".encode() for s in range(1, job.step + 1)
        )
        self.files[result_id] = {
            "id": result_id,
            "object": "file",
            "bytes": len(csv),
            "created_at": int(self._clock()),
            "filename": "step_metrics.csv",
            "purpose": "fine-tune-results",
            "status": "processed",
        }
        self.contents[result_id] = csv
        job.body["result_files"] = [result_id]
        job.body["fine_tuned_model"] = f"ft:{job.body['model']}:rlft::{job.body['id']}"
        self._set_status(job, "succeeded")

    # --- wire shapes ----------------------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        limit = int(request.url.params.get("limit", 20))
        start = 0
        if after is not None:
            ids = [item["id"] for item in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start : start + limit]
        return self._json({"object": "list", "data": page, "has_more": start + limit < len(items)})

    def _json(self, body: Any, *, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json=body, headers=self._request_id())

    def _error(
        self, status: int, message: str, param: str | None = None, *, code: str | None = None
    ) -> httpx.Response:
        if self.flavour == "azure":
            error: dict[str, Any] = {"code": code or _AZURE_CODES.get(status, "invalidPayload")}
            error.update(message=message, target=param)
        else:
            error = {"message": message, "type": "invalid_request_error", "param": param}
            error["code"] = code
        return httpx.Response(status, json={"error": error}, headers=self._request_id())

    def _request_id(self) -> dict[str, str]:
        header = "x-request-id" if self.flavour == "openai" else "apim-request-id"
        return {header: f"req_{len(self.requests):06d}"}


def _has_credentials(request: httpx.Request) -> bool:
    return bool(request.headers.get("authorization") or request.headers.get("api-key"))


def _multipart(request: httpx.Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition") or "")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode()
    return fields, files


def main() -> None:
    """Serve a clock-driven fake in its own process; print its base URL, serve until killed.

    Out-of-band controls for a benchmark in another process: ``POST /__seed``
    (``{"count", "duration": [low, high], "queue"}``), ``GET /__stats``, ``POST /__reset``.
    """
    import argparse

    parser = argparse.ArgumentParser(description="A fake OpenAI fine-tuning API on loopback.")
    parser.add_argument("--prefix", default="/v1")
    parser.add_argument("--job-duration", type=float, default=2.0)
    parser.add_argument("--total-steps", type=int, default=10)
    args = parser.parse_args()
    server = FakeFineTuningServer(
        prefix=args.prefix,
        job_duration=args.job_duration,
        total_steps=args.total_steps,
        file_polls=0,
    )
    running = server.serve()
    running.admin = True
    with running:
        print(running.url, flush=True)
        running.wait()


if __name__ == "__main__":
    main()
