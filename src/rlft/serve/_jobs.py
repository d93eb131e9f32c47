"""Fine-tuning jobs over the HTTP API: rlft's Client creates them, the job store keeps them.

Every job the server creates is labelled with its key's short id and watched by a
``JobManager``, which saves each event to the job store before anything reads it; on start the
server reattaches every unsettled job it created, so a restart loses no event.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

from rlft import Client, Hyperparameters, Job, JobManager
from rlft.datasets import Dataset
from rlft.exceptions import DatasetValidationError, GraderValidationError, RLFTError
from rlft.graders import from_openai
from rlft.serve._errors import ApiError, from_rlft_error
from rlft.serve._files import FileStore, problem_line
from rlft.serve._options import ApiKey, ServeOptions
from rlft.serve._wire import OWNER_LABEL, checkpoint_wire, event_wire, job_wire, page

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from rlft import StoredJob

__all__ = ["JobService", "query_limit"]

logger = logging.getLogger("rlft.serve")

# OpenAI reinforcement hyperparameter -> rlft.Hyperparameters field.
_HYPER = {
    "n_epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
    "eval_interval": "eval_interval",
    "eval_samples": "eval_samples",
    "reasoning_effort": "reasoning_effort",
    "compute_multiplier": "compute_multiplier",
}
_NOT_RFT = (
    "rlft serves reinforcement fine-tuning only: set method.type to 'reinforcement' with a "
    "grader (method.reinforcement.grader)"
)


def query_limit(value: str | None, default: int = 20, most: int = 1000) -> int:
    """A ``limit`` query parameter, checked (400 when it is not a number in range)."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(
            400, f"limit must be an integer, got {value[:20]!r}", param="limit"
        ) from None
    if not 1 <= number <= most:
        raise ApiError(400, f"limit must be between 1 and {most}", param="limit")
    return number


def _hyperparameters(raw: Any, seed: Any) -> Hyperparameters:
    where = "method.reinforcement.hyperparameters"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ApiError(400, f"{where} must be an object", param=where)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _HYPER:
            known = ", ".join(_HYPER)
            raise ApiError(400, f"unknown hyperparameter {key!r}; use {known}", param=where)
        if value != "auto" and value is not None:
            values[_HYPER[key]] = value
    if seed is not None:
        values["seed"] = seed
    try:
        return Hyperparameters.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        back = {v: k for k, v in _HYPER.items()}.get(name, name)
        param = "seed" if name == "seed" else f"{where}.{back}"
        raise ApiError(400, f"{param}: {first['msg']}", param=param) from None


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or len(raw) > 16:
        raise ApiError(400, "metadata is an object of at most 16 string pairs", param="metadata")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or len(str(key)) > 64 or len(value) > 512:
            raise ApiError(
                400,
                "metadata keys are at most 64 characters, values strings of at most 512",
                param=f"metadata.{key}",
            )
        if key == OWNER_LABEL:
            raise ApiError(400, f"metadata key {OWNER_LABEL!r} is reserved", param="metadata")
        out[str(key)] = value
    return out


class JobService:
    """Creates, lists and controls jobs for the API; watches them into the job store."""

    def __init__(self, options: ServeOptions, files: FileStore, home: Path) -> None:
        self.options = options
        self.files = files
        self.requests = home / "jobs"
        self.requests.mkdir(parents=True, exist_ok=True)
        self.alerts = home / "alerts"
        self.alerts.mkdir(parents=True, exist_ok=True)
        self.client = Client(provider=options.provider, cwd=options.cwd, store=options.store)
        self._managers: dict[str, JobManager] = {}
        self._watching: set[str] = set()
        # Each job's events as OpenAI objects, oldest first: a poll reads only the new ones.
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._tg: TaskGroup | None = None

    @property
    def store(self) -> Any:
        """The job store (``rlft.Client.store``)."""
        store = self.client.store
        assert store is not None  # built with a store path, never store=False
        return store

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, tg: TaskGroup) -> int:
        """Reattach every unsettled job the server created; return how many."""
        self._tg = tg
        rows = await self.store.jobs(settled=False)
        count = 0
        for row in rows:
            if row.creating or OWNER_LABEL not in row.labels:
                continue
            self._watch(row)
            count += 1
        return count

    async def aclose(self) -> None:
        """Close the backends' connections and the store."""
        await self.client.aclose()

    def _manager(self, provider: str) -> JobManager:
        if provider not in self._managers:
            interval = self.options.poll_interval
            if interval is None:
                suggested = self.client.provider_for(provider).capabilities.poll_interval
                interval = max(0.2, suggested)
            self._managers[provider] = JobManager(
                client=self.client, poll_interval=interval, guards=list(self.options.guards)
            )
        return self._managers[provider]

    def _handle(self, row: StoredJob) -> Job:
        return Job(
            provider=self.client.provider_for(row.provider),
            record=row.to_record(),
            local_id=row.local_id,
            store=self.store,
        )

    def _watch(self, row: StoredJob) -> None:
        if self._tg is None or row.local_id in self._watching or row.settled:
            return
        self._watching.add(row.local_id)
        self._tg.start_soon(self._follow, row, name=f"rlft-serve-watch-{row.local_id}")

    async def _follow(self, row: StoredJob) -> None:
        try:
            job = self._handle(row)
            async with self._manager(row.provider).watch([job]) as updates:
                async for update in updates:
                    # Events are saved by the manager before it yields them; trips are ours.
                    if update.kind == "guard" and update.trip is not None:
                        self._alert(row.local_id, update.trip)
        except Exception as exc:  # one job's backend failing must not stop the server
            logger.warning("stopped watching %s: %s: %s", row.local_id, type(exc).__name__, exc)
        finally:
            self._watching.discard(row.local_id)

    # --- guard alerts -------------------------------------------------------------------------

    def _alert(self, local_id: str, trip: Any) -> None:
        line = {
            "guard": trip.guard,
            "reason": trip.reason,
            "taken": trip.taken,
            "at": trip.at.isoformat(),
        }
        with (self.alerts / f"{local_id}.jsonl").open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    def alerts_of(self, local_id: str) -> list[str]:
        """The guard trips recorded for a job, as lines for the dashboard."""
        try:
            lines = (self.alerts / f"{local_id}.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            trip = json.loads(line)
            out.append(f"{trip['guard']}: {trip['reason']} ({trip['taken'] or 'alerted'})")
        return out

    # --- requests sidecar ---------------------------------------------------------------------

    def _request(self, local_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.requests / f"{local_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def wire(self, row: StoredJob) -> dict[str, Any]:
        """The OpenAI job object of a stored job."""
        return job_wire(row, self._request(row.local_id))

    # --- reads --------------------------------------------------------------------------------

    async def row(self, key: ApiKey, job_id: str) -> StoredJob:
        """The stored job, if this key may see it; else 404 (existence is not leaked)."""
        row = await self.store.find(job_id)
        if row is None or row.creating or not _visible(row, key):
            raise ApiError(
                404, f"no fine-tuning job {job_id[:80]!r}", param="fine_tuning_job_id", code=None
            )
        return row  # type: ignore[no-any-return]

    async def list(self, key: ApiKey, query: Mapping[str, str]) -> dict[str, Any]:
        """OpenAI's job list: newest first, ``after``/``limit`` paging, ``metadata[k]`` filter."""
        limit = query_limit(query.get("limit"))
        wanted = {
            k[len("metadata[") : -1]: v
            for k, v in query.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        labels = dict(wanted)
        if not key.admin:
            labels[OWNER_LABEL] = key.owner
        rows = await self.store.jobs(labels=labels or None)
        rows = [r for r in rows if not r.creating]
        ids = [{"id": r.local_id} for r in rows]
        chunk = page(ids, after=query.get("after"), limit=limit)
        by_id = {r.local_id: r for r in rows}
        chunk["data"] = [self.wire(by_id[item["id"]]) for item in chunk["data"]]
        return chunk

    async def events(self, key: ApiKey, job_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """The job's events from the store, newest first, paged like OpenAI's."""
        row = await self.row(key, job_id)
        known = self._events.setdefault(row.local_id, [])
        last = known[-1]["id"] if known else None
        seen = {item["id"] for item in known[-64:]}
        for event in await self.store.events(row.local_id, after=last):
            if event.id not in seen:  # an `after` the log lost returns it whole
                known.append(event_wire(event))
        items = known[::-1]
        return page(items, after=query.get("after"), limit=query_limit(query.get("limit")))

    async def checkpoints(
        self, key: ApiKey, job_id: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        """The job's checkpoints from its backend, newest first."""
        row = await self.row(key, job_id)
        job = self._handle(row)
        try:
            found = await job.checkpoints()
        except RLFTError as exc:
            raise from_rlft_error(exc) from None
        items = [checkpoint_wire(c, row.local_id) for c in reversed(found)]
        chunk = page(items, after=query.get("after"), limit=query_limit(query.get("limit"), 10))
        chunk["first_id"] = chunk["data"][0]["id"] if chunk["data"] else None
        chunk["last_id"] = chunk["data"][-1]["id"] if chunk["data"] else None
        return chunk

    # --- writes -------------------------------------------------------------------------------

    async def act(self, key: ApiKey, job_id: str, action: str) -> dict[str, Any]:
        """Cancel, pause or resume a job on its backend."""
        row = await self.row(key, job_id)
        job = self._handle(row)
        if action == "cancel" and job.status.is_terminal:
            raise ApiError(
                400, f"job {job_id} has already {job.status.value}", code="invalid_state"
            )
        try:
            await getattr(job, action)()
        except RLFTError as exc:
            raise from_rlft_error(exc) from None
        fresh = await self.row(key, job_id)
        self._watch(fresh)
        return self.wire(fresh)

    async def create(self, key: ApiKey, body: Any, idempotency_key: str | None) -> dict[str, Any]:
        """Create an RFT job from an OpenAI create request."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model")
        method = body.get("method")
        if body.get("hyperparameters") is not None or not isinstance(method, Mapping):
            raise ApiError(400, _NOT_RFT, param="method", code="unsupported_method")
        if method.get("type") != "reinforcement":
            raise ApiError(
                400,
                f"method.type {method.get('type')!r} is not supported: {_NOT_RFT}",
                param="method.type",
                code="unsupported_method",
            )
        rft = method.get("reinforcement")
        if not isinstance(rft, Mapping) or not isinstance(rft.get("grader"), Mapping):
            raise ApiError(
                400, "method.reinforcement.grader is required", param="method.reinforcement"
            )
        try:
            grader = from_openai(rft["grader"])
        except GraderValidationError as exc:
            param = "method.reinforcement.grader" + (f".{exc.path}" if exc.path else "")
            raise ApiError(400, f"invalid grader: {exc}", param=param) from None
        params = _hyperparameters(rft.get("hyperparameters"), body.get("seed"))
        labels = _metadata(body.get("metadata"))
        labels[OWNER_LABEL] = key.owner
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise ApiError(400, "suffix is a string of at most 64 characters", param="suffix")
        response_format = rft.get("response_format")
        if response_format is not None and not isinstance(response_format, Mapping):
            raise ApiError(400, "response_format must be an object", param="response_format")
        train = await self._dataset(key, body.get("training_file"), "training_file")
        valid = None
        if body.get("validation_file") is not None:
            valid = await self._dataset(key, body.get("validation_file"), "validation_file")
        provider = self.options.backend_for(model)
        # OpenAI makes a new job per create; only a client's Idempotency-Key repeats one.
        idem = f"serve:{key.owner}:{idempotency_key}" if idempotency_key else secrets.token_hex(16)
        try:
            job = await self.client.jobs.create(
                train=train,
                validation=valid,
                grader=grader,
                model=model,
                hyperparameters=params,
                name=suffix,
                labels=labels,
                response_format=dict(response_format) if response_format else None,
                idempotency_key=idem,
                provider=provider,
            )
        except DatasetValidationError as exc:
            train_id = str(body.get("training_file"))
            record = self.files.get(train_id)
            name = f"{record.filename} ({train_id})" if record is not None else train_id
            message, field = problem_line(exc, name)
            raise ApiError(400, message, param=field or "training_file") from None
        except RLFTError as exc:
            raise from_rlft_error(exc) from None
        assert job.local_id is not None
        sidecar = self.requests / f"{job.local_id}.json"
        if not sidecar.exists():
            request = {
                "model": model,
                "training_file": body.get("training_file"),
                "validation_file": body.get("validation_file"),
                "method": json.loads(json.dumps(method)),
                "seed": body.get("seed") if body.get("seed") is not None else 0,
                "suffix": suffix,
            }
            sidecar.write_text(json.dumps(request), encoding="utf-8")
        row = await self.row(key, job.local_id)
        self._watch(row)
        return self.wire(row)

    async def _dataset(self, key: ApiKey, file_id: Any, param: str) -> Dataset:
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, f"Missing required parameter: '{param}'.", param=param)
        record = self.files.get(file_id)
        if record is None or not (key.admin or record.owner == key.owner):
            raise ApiError(400, f"invalid {param}: no file {file_id[:80]!r}", param=param)
        path = self.files.content_path(file_id)
        try:
            return await anyio.to_thread.run_sync(Dataset.from_jsonl, path)
        except DatasetValidationError as exc:
            message, field = problem_line(exc, record.filename)
            raise ApiError(400, message, param=field or param) from None


def _visible(row: StoredJob, key: ApiKey) -> bool:
    return key.admin or row.labels.get(OWNER_LABEL) == key.owner
