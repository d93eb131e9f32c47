"""The ``Provider`` contract over the OpenAI-compatible fine-tuning API, shared by every backend
that speaks it (OpenAI, Azure, Bedrock's open-weight endpoint). Subclasses add auth, base URL and
quirks; each method here is one remote operation (paging included) translated to neutral models.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import anyio

from rlft._concurrency import map_concurrently
from rlft._models import Checkpoint, JobEvent, JobRecord
from rlft.exceptions import (
    BadRequestError,
    DatasetValidationError,
    GraderValidationError,
    ProviderConnectionError,
    RLFTError,
    ServerError,
    UsageError,
)
from rlft.openai_compat._client import OpenAICompatClient, Sleep
from rlft.openai_compat._errors import ErrorHint, malformed
from rlft.openai_compat._normalise import (
    to_checkpoint,
    to_event,
    to_grade_result,
    to_job,
)
from rlft.openai_compat._request import (
    IDEMPOTENCY_METADATA_KEY,
    Dialect,
    build_create_body,
    check_job_spec,
    idempotency_tag,
)
from rlft.provider import DatasetRole, Provider, ProviderSettings

if TYPE_CHECKING:
    from rlft._spec import CreateJobRequest, JobSpec
    from rlft.datasets import Dataset
    from rlft.graders import GradeResult

__all__ = ["OpenAICompatProvider", "segment"]

log = logging.getLogger("rlft.providers")

_FILE_FAILED = frozenset({"error", "failed", "deleted", "deleting", "cancelled"})
_JOBS = "/fine_tuning/jobs"


def segment(value: str, what: str = "id") -> str:
    """Quote one path segment, so an id can never walk to another endpoint (``../files``)."""
    if not value or not isinstance(value, str):
        raise UsageError(f"a {what} is required, got {value!r}")
    return quote(value, safe="")


def _safe_filename(name: Any, fallback: str) -> str:
    # A result file's name comes from the server: keep only its last component.
    text = Path(str(name)).name if name else ""
    return text if text not in ("", ".", "..") else fallback


class OpenAICompatProvider(Provider):
    """A ``Provider`` over the OpenAI-compatible fine-tuning API.

    Subclasses set ``name``, ``capabilities`` and ``dialect``, build an ``OpenAICompatClient`` with
    their auth and base URL, and pass it here.

    Args:
        settings: The provider's settings.
        client: The wire client (owned: closed by ``aclose``).
        sleep: How to wait while a file is processed; ``anyio.sleep`` by default.
        file_poll_interval: Seconds between file status checks.
        file_processing_timeout: Seconds to wait for an uploaded file to be processed.
    """

    dialect: Dialect
    """Request rules (suffix, metadata, body options); a class default or set per instance."""
    status_vocabulary: ClassVar[str | None] = None
    """The ``map_status`` table to use; ``None`` means the provider's ``name``."""
    events_newest_first: ClassVar[bool] = True
    """OpenAI lists events newest first; ``list_events`` walks back to the cursor."""
    page_size: ClassVar[int] = 100

    def __init__(
        self,
        *,
        settings: ProviderSettings,
        client: OpenAICompatClient,
        sleep: Sleep | None = None,
        file_poll_interval: float = 2.0,
        file_processing_timeout: float = 1800.0,
    ) -> None:
        super().__init__(settings=settings)
        self._client = client
        self._sleep = sleep or anyio.sleep
        self._file_poll_interval = file_poll_interval
        self._file_processing_timeout = file_processing_timeout

    @property
    def client(self) -> OpenAICompatClient:
        """The wire client (for subclasses and tests)."""
        return self._client

    # --- translation ------------------------------------------------------------------------

    def _job(self, payload: Any) -> JobRecord:
        return to_job(payload, provider=self.name, vocabulary=self.status_vocabulary or self.name)

    def _body_defaults(self) -> dict[str, Any]:
        """Top-level body fields from settings (Azure ``trainingType``); options override them."""
        return {}

    def _create_hints(self, spec: JobSpec) -> list[ErrorHint]:
        """Advice for create-time errors; subclasses name their platform's closures."""
        model = spec.model

        def hint(status: int, code: str | None, param: str | None) -> str | None:
            if status == 404 or param == "model" or code == "model_not_found":
                return (
                    f"Model {model!r} is not available for reinforcement fine-tuning here: it may "
                    f"be retired or not enabled for this account; pick a current RFT model"
                )
            if status == 403:
                return (
                    "The platform refused to create a fine-tuning job for this account: the "
                    "model or the fine-tuning service is unavailable to it"
                )
            return None

        return [hint]

    def _grader_hints(self) -> list[ErrorHint]:
        """Advice for grader endpoint errors (Azure: the v1 route)."""
        return []

    @staticmethod
    def _state_hint(job_id: str, operation: str, rule: str) -> ErrorHint:
        def hint(status: int, code: str | None, param: str | None) -> str | None:
            if status in (400, 409):
                return f"Job {job_id} cannot {operation} in its current state: {rule}"
            return None

        return hint

    # --- checks -----------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Range-check hyperparameters and request fields; raise before any upload."""
        check_job_spec(spec, self.dialect)

    # --- files ------------------------------------------------------------------------------

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Render, upload with ``purpose=fine-tune``, and wait until the file is processed."""
        from rlft.datasets import render

        content = render(dataset, self.name)
        digest = str(getattr(dataset, "content_hash", "") or "")[:12]
        filename = f"rlft-{role}-{digest}.jsonl" if digest else f"rlft-{role}.jsonl"
        file = await self._client.upload(
            "/files", filename=filename, content=content, fields={"purpose": "fine-tune"}
        )
        if not isinstance(file, dict) or not isinstance(file.get("id"), str):
            raise malformed(self.name, "POST /files", file)
        await self._wait_processed(file, role=role)
        return str(file["id"])

    async def _wait_processed(self, file: dict[str, Any], *, role: str) -> None:
        file_id = str(file["id"])
        polls = max(1, math.ceil(self._file_processing_timeout / self._file_poll_interval))
        status = ""
        for poll in range(polls + 1):
            # A backend without a status field (some compatible servers) is ready at once.
            status = str(file.get("status") or "processed").lower()
            if status == "processed":
                return
            if status in _FILE_FAILED:
                details = file.get("status_details") or file.get("error") or "no details given"
                raise DatasetValidationError(
                    f"{self.name} rejected the {role} file {file_id} ({file.get('filename')}): "
                    f"status {status}: {details}"
                )
            if poll == polls:
                break
            await self._sleep(self._file_poll_interval)
            file = await self._client.get(f"/files/{segment(file_id)}")
            if not isinstance(file, dict):
                raise malformed(self.name, f"GET /files/{file_id}", file)
        raise ProviderConnectionError(
            f"the {role} file {file_id} was still {status!r} after "
            f"{self._file_processing_timeout:g}s; try again later or raise "
            f"file_processing_timeout",
            provider=self.name,
        )

    async def download_results(self, job_id: str, path: str | Path) -> list[Path]:
        """Download a job's result files (``results.csv`` and the like) into the folder ``path``.

        Returns:
            The files written, in the order the job lists them.
        """
        job = self._job(await self._client.get(f"{_JOBS}/{segment(job_id, 'job id')}"))
        file_ids = (job.raw or {}).get("result_files") or []
        folder = anyio.Path(path)
        await folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for file_id in file_ids if isinstance(file_ids, list) else []:
            file_id = str(file_id)
            meta = await self._client.get(f"/files/{segment(file_id)}")
            name = _safe_filename(meta.get("filename") if isinstance(meta, dict) else None, file_id)
            content_path = f"/files/{segment(file_id)}/content"
            content = await self._client.request("GET", content_path, raw=True)
            target = folder / name
            await target.write_bytes(content)
            written.append(Path(target))
        return written

    # --- jobs -------------------------------------------------------------------------------

    async def _find_by_key(self, request: CreateJobRequest) -> dict[str, Any] | None:
        """The job an earlier create with this request's key made, if the backend lists it.

        With metadata, the job carrying the key (filtered server-side where the dialect allows,
        and always checked here: a backend that ignores the filter returns every job). Without,
        a job of the same model whose suffix ends with the key's tag, created within the
        dialect's reconcile window (jobs are listed newest first, so the walk stops there).
        """
        key = request.idempotency_key
        dialect = self.dialect
        params = {f"metadata[{IDEMPOTENCY_METADATA_KEY}]": key} if dialect.metadata_filter else {}
        if not dialect.send_metadata:
            params = {}
        tag = f"-{idempotency_tag(key)}"
        since = time.time() - dialect.reconcile_window
        pages = self._client.paginate(_JOBS, params=params, page_size=self.page_size, limit=100)
        async with aclosing(pages) as jobs:
            async for job in jobs:
                if dialect.send_metadata:
                    metadata = job.get("metadata")
                    if isinstance(metadata, dict) and metadata.get(IDEMPOTENCY_METADATA_KEY) == key:
                        return job
                    continue
                created = job.get("created_at")
                if isinstance(created, int | float) and created < since:
                    return None
                suffix = job.get("suffix") or job.get("user_provided_suffix") or ""
                # Loose: Azure may answer "o4-mini-2025-04-16" for a job created as "o4-mini".
                model, wanted = str(job.get("model") or ""), str(request.spec.model or "")
                same_model = model.startswith(wanted) or wanted.startswith(model)
                if same_model and isinstance(suffix, str) and suffix.endswith(tag):
                    return job
        return None

    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Create the RFT job, or return the one already carrying ``request.idempotency_key``
        (in its metadata, or as the suffix tag where the backend has no metadata).

        A create that fails ambiguously (a timeout, a 5xx: it may have landed) is followed by one
        more lookup, so a caller never starts a second paid job by trying again.
        """
        body = build_create_body(request, self.dialect, defaults=self._body_defaults())
        key = request.idempotency_key
        guarded = self.dialect.send_metadata or self.dialect.suffix_tag
        if guarded and (existing := await self._find_by_key(request)) is not None:
            log.info("%s: job %s already carries this idempotency key", self.name, existing["id"])
            return self._job(existing)
        try:
            job = await self._client.request(
                "POST",
                _JOBS,
                json=body,
                headers={"Idempotency-Key": key},
                hints=self._create_hints(request.spec),
            )
        except (ProviderConnectionError, ServerError):
            if guarded:
                try:
                    found = await self._find_by_key(request)
                except RLFTError:
                    found = None
                if found is not None:
                    return self._job(found)
            raise
        return self._job(job)

    async def get_job(self, job_id: str) -> JobRecord:
        """Fetch one job."""
        return self._job(await self._client.get(f"{_JOBS}/{segment(job_id, 'job id')}"))

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """The most recent jobs, newest first, walking pages up to ``limit``."""
        pages = self._client.paginate(_JOBS, page_size=min(limit, self.page_size), limit=limit)
        async with aclosing(pages) as jobs:
            return [self._job(job) async for job in jobs]

    async def _job_action(self, job_id: str, action: str, rule: str) -> JobRecord:
        path = f"{_JOBS}/{segment(job_id, 'job id')}/{action}"
        hint = self._state_hint(job_id, action, rule)
        return self._job(await self._client.post(path, hints=[hint]))

    async def pause_job(self, job_id: str) -> JobRecord:
        """Pause a running job; the service snapshots a usable checkpoint first."""
        rule = "only a running job that has trained at least one step can pause"
        return await self._job_action(job_id, "pause", rule)

    async def resume_job(self, job_id: str) -> JobRecord:
        """Resume a paused job from its last checkpoint."""
        return await self._job_action(job_id, "resume", "only a paused job can resume")

    async def cancel_job(self, job_id: str) -> JobRecord:
        """Cancel a job (billing stops; work done so far is billed)."""
        rule = "a job that already succeeded, failed or was cancelled cannot be cancelled"
        return await self._job_action(job_id, "cancel", rule)

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        """Events after the cursor ``after``, oldest first.

        OpenAI lists events newest first, with ``after`` paging further back in time; so this
        walks from the newest event back to ``after`` and reverses. An ``after`` the backend no
        longer has (events expire) yields every event it still has.
        """
        path = f"{_JOBS}/{segment(job_id, 'job id')}/events"
        collected: list[dict[str, Any]] = []
        if self.events_newest_first:
            async with aclosing(self._client.paginate(path, page_size=self.page_size)) as events:
                async for event in events:
                    if after is not None and event.get("id") == after:
                        break
                    collected.append(event)
            collected.reverse()
        else:
            params = {"after": after} if after is not None else None
            pages = self._client.paginate(path, params=params, page_size=self.page_size)
            async with aclosing(pages) as events:
                collected = [event async for event in events]
        return [to_event(e, job_id=job_id, provider=self.name) for e in collected]

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Every checkpoint the job kept, by step (RFT keeps the three best by valid reward)."""
        path = f"{_JOBS}/{segment(job_id, 'job id')}/checkpoints"
        async with aclosing(self._client.paginate(path, page_size=self.page_size)) as items:
            checkpoints = [
                to_checkpoint(item, job_id=job_id, provider=self.name) async for item in items
            ]
        return sorted(checkpoints, key=lambda c: (c.step is None, c.step or 0))

    # --- inference (preflight) ---------------------------------------------------------------

    def _chat_path(self, model: str) -> str:
        """Where chat completions for ``model`` are served (Azure classic: per deployment)."""
        return "/chat/completions"

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample one chat completion per prompt from ``model`` (``POST /chat/completions``).

        At most four requests are in flight; a failed request raises (preflight wants to know).
        """
        if not model:
            raise UsageError(f"provider {self.name!r} needs a model name to sample from")

        async def sample(messages: Sequence[Mapping[str, Any]]) -> str:
            body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
            if max_tokens is not None:
                body["max_completion_tokens"] = max_tokens
            # Retrying a lost completion costs tokens, never a duplicate resource.
            answer = await self._client.post(self._chat_path(model), json=body, idempotent=True)
            try:
                return str(answer["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError):
                raise malformed(self.name, "POST /chat/completions", answer) from None

        return await map_concurrently(sample, prompts, limit=4)

    # --- graders ----------------------------------------------------------------------------

    async def validate_grader(self, payload: Any) -> None:
        """Ask the backend whether a compiled grader is valid.

        Raises:
            GraderValidationError: The backend refused it; ``path`` is the field it blamed.
        """
        try:
            await self._client.post(
                "/fine_tuning/alpha/graders/validate",
                json={"grader": payload},
                idempotent=True,
                hints=self._grader_hints(),
            )
        except BadRequestError as exc:
            raise GraderValidationError(
                f"{self.name} refused the grader: {exc}", path=exc.param or ""
            ) from exc

    async def run_grader(
        self, payload: Any, *, sample: str, item: Mapping[str, Any]
    ) -> GradeResult:
        """Score one sample with the backend's grader runner (the alpha ``graders/run``).

        Returns:
            A ``rlft.graders.GradeResult``: the service's ``reward``, its sub-rewards, and its
            error flags as error kinds.
        """
        body = {"grader": payload, "model_sample": sample, "item": dict(item)}
        answer = await self._client.post(
            "/fine_tuning/alpha/graders/run",
            json=body,
            idempotent=True,
            hints=self._grader_hints(),
        )
        if not isinstance(answer, dict) or "reward" not in answer:
            raise malformed(self.name, "POST /fine_tuning/alpha/graders/run", answer)
        return to_grade_result(answer)

    async def aclose(self) -> None:
        """Close connections. Idempotent."""
        await self._client.aclose()
