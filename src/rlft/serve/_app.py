"""The ASGI app: routes, keys, limits and the OpenAI error envelope around every answer."""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from html import escape
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rlft._paths import rlft_home
from rlft.exceptions import RLFTError
from rlft.serve import _dashboard
from rlft.serve._errors import ApiError, envelope, from_rlft_error
from rlft.serve._files import FileStore
from rlft.serve._graders import GraderService
from rlft.serve._jobs import JobService, query_limit
from rlft.serve._options import ApiKey, ServeOptions, hash_key
from rlft.serve._wire import OWNER_LABEL, page

__all__ = ["create_app"]

logger = logging.getLogger("rlft.serve")

SESSION_COOKIE = "rlft_session"
SESSION_SECONDS = 12 * 3600
_LOCAL = ApiKey(digest="0" * 48 + "6c6f63616c6b6579", admin=True)  # no keys: loopback only


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413, by header or while they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = ApiError(
            413, f"the request body is larger than {self.limit} bytes", code="request_too_large"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _error_response(too_big)(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_big  # an endpoint answers it as any refusal
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except ApiError:
            if not started:
                await _error_response(too_big)(scope, receive, send)


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> None:
        """Spend one token or raise 429 with ``Retry-After``."""
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            self._buckets[who] = (tokens, now)
            raise ApiError(
                429,
                f"rate limit: at most {self.rate:g} requests per second; retry after {wait}s",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[who] = (tokens - 1.0, now)


class Keys:
    """Who is calling: a bearer key, an ``api-key`` header, or a dashboard session cookie."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self.by_digest = {key.digest: key for key in keys}
        self.open = not keys  # loopback only (the CLI refuses anything else)
        self.sessions: dict[str, tuple[ApiKey, float]] = {}

    def login(self, key: ApiKey) -> str:
        """A new session token for ``key``, valid for ``SESSION_SECONDS``."""
        now = time.monotonic()
        for token, (_, expires) in list(self.sessions.items()):
            if expires < now:  # forget expired sessions as new ones come
                del self.sessions[token]
        token = secrets.token_urlsafe(32)
        self.sessions[token] = (key, now + SESSION_SECONDS)
        return token

    def session(self, token: str) -> ApiKey | None:
        """The key a live session token stands for."""
        found = self.sessions.get(token)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def check(self, secret: str) -> ApiKey | None:
        """The key a raw secret is, if any."""
        if self.open:
            return _LOCAL
        return self.by_digest.get(hash_key(secret))

    def of(self, request: Request, *, cookie: bool = False) -> ApiKey | None:
        """The caller's key, or ``None``."""
        if self.open:
            return _LOCAL
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
        secret = secret or request.headers.get("api-key", "").strip()
        if secret:
            return self.check(secret)
        if cookie:
            return self.session(request.cookies.get(SESSION_COOKIE, ""))
        return None


Handler = Callable[[Request, ApiKey], Awaitable[Any]]


def create_app(options: ServeOptions) -> Starlette:
    """Build the server's ASGI app (Starlette) for ``options``.

    Routes: ``/v1/files``, ``/v1/fine_tuning/jobs`` (and its actions, ``/events``,
    ``/checkpoints``), ``/v1/fine_tuning/alpha/graders/run|validate``,
    ``/graders/NAME/score`` and the dashboard at ``/``.
    """
    home = options.home or rlft_home() / "serve"
    files = FileStore(home / "files")
    jobs = JobService(options, files, home)
    graders = GraderService(options.graders, timeout=options.grader_timeout)
    keys = Keys(tuple(options.keys))
    limiter = RateLimiter(options.rate, options.burst)

    def api(handler: Handler, *, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                key = keys.of(request)
                if key is None:
                    host = request.client.host if request.client else "?"
                    limiter.take(f"anonymous:{host}")  # slows down key guessing too
                    raise ApiError(
                        401,
                        "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
                        code="invalid_api_key",
                    )
                limiter.take(key.owner)
                result = await handler(request, key)
            except ApiError as exc:
                return _error_response(exc)
            except ClientDisconnect:
                return Response(status_code=499)
            except RLFTError as exc:
                return _error_response(from_rlft_error(exc))
            except Exception:
                logger.exception("unexpected error serving %s", request.url.path)
                return _error_response(ApiError(500, "internal error; see the server's log"))
            if isinstance(result, Response):
                return result
            return JSONResponse(result, status_code=status)

        return endpoint

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None

    # --- files --------------------------------------------------------------------------------

    def visible_file(key: ApiKey, file_id: str) -> Any:
        record = files.get(file_id)
        if record is None or not (key.admin or record.owner == key.owner):
            raise ApiError(404, f"No such File object: {file_id[:80]}", param="file_id")
        return record

    async def upload(request: Request, key: ApiKey) -> Any:
        try:
            form = await request.form(max_files=1, max_fields=10)
        except (AssertionError, ValueError, HTTPException) as exc:
            detail = getattr(exc, "detail", None) or str(exc) or "not multipart/form-data"
            raise ApiError(400, f"a file upload is multipart/form-data: {detail}") from None
        purpose = form.get("purpose")
        if purpose != "fine-tune":
            raise ApiError(400, "purpose must be 'fine-tune'", param="purpose")
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        content = await upload_file.read()
        record = await files.add(
            content=content,
            filename=upload_file.filename or "upload.jsonl",
            purpose=purpose,
            owner=key.owner,
        )
        return record.wire()

    async def list_files(request: Request, key: ApiKey) -> Any:
        mine = [f for f in files.all() if key.admin or f.owner == key.owner]
        purpose = request.query_params.get("purpose")
        items = [f.wire() for f in mine if purpose is None or f.purpose == purpose]
        if request.query_params.get("order") == "asc":
            items.reverse()
        chunk = page(
            items,
            after=request.query_params.get("after"),
            limit=query_limit(request.query_params.get("limit"), default=10000, most=10000),
        )
        chunk["first_id"] = chunk["data"][0]["id"] if chunk["data"] else None
        chunk["last_id"] = chunk["data"][-1]["id"] if chunk["data"] else None
        return chunk

    async def get_file(request: Request, key: ApiKey) -> Any:
        return visible_file(key, request.path_params["file_id"]).wire()

    async def delete_file(request: Request, key: ApiKey) -> Any:
        record = visible_file(key, request.path_params["file_id"])
        files.delete(record.id)
        return {"id": record.id, "object": "file", "deleted": True}

    async def file_content(request: Request, key: ApiKey) -> Any:
        record = visible_file(key, request.path_params["file_id"])
        content = await anyio.Path(files.content_path(record.id)).read_bytes()
        return Response(content, media_type="application/octet-stream")

    # --- jobs ---------------------------------------------------------------------------------

    async def create_job(request: Request, key: ApiKey) -> Any:
        body = await body_json(request)
        return await jobs.create(key, body, request.headers.get("idempotency-key"))

    async def list_jobs(request: Request, key: ApiKey) -> Any:
        return await jobs.list(key, request.query_params)

    async def get_job(request: Request, key: ApiKey) -> Any:
        return jobs.wire(await jobs.row(key, request.path_params["job_id"]))

    def action(name: str) -> Handler:
        async def run(request: Request, key: ApiKey) -> Any:
            return await jobs.act(key, request.path_params["job_id"], name)

        return run

    async def job_events(request: Request, key: ApiKey) -> Any:
        return await jobs.events(key, request.path_params["job_id"], request.query_params)

    async def job_checkpoints(request: Request, key: ApiKey) -> Any:
        return await jobs.checkpoints(key, request.path_params["job_id"], request.query_params)

    # --- graders ------------------------------------------------------------------------------

    async def run_grader(request: Request, key: ApiKey) -> Any:
        return await graders.run(await body_json(request))

    async def validate_grader(request: Request, key: ApiKey) -> Any:
        return await graders.validate(await body_json(request))

    async def score(request: Request, key: ApiKey) -> Any:
        return await graders.score(request.path_params["name"], await body_json(request))

    # --- dashboard ----------------------------------------------------------------------------

    async def dashboard_row(key: ApiKey, job_id: str) -> tuple[Any, dict[str, Any], Any]:
        row = await jobs.row(key, job_id)
        events = await jobs.store.events(row.local_id)
        info = _dashboard.summary(events)
        info["alerts"] = jobs.alerts_of(row.local_id) + info["alerts"]
        return row, jobs.wire(row), info

    async def home_page(request: Request) -> Response:
        key = keys.of(request, cookie=True)
        if key is None:
            return HTMLResponse(_dashboard.login_page())
        mine = None if key.admin else {OWNER_LABEL: key.owner}
        rows = await jobs.store.jobs(labels=mine, limit=200)
        listed = [jobs.wire(row) for row in rows if not row.creating]
        who = "admin" if key.admin else f"key {key.owner[:8]}"
        return HTMLResponse(_dashboard.jobs_page(listed, who))

    async def job_html(request: Request) -> Response:
        key = keys.of(request, cookie=True)
        if key is None:
            return RedirectResponse("/", status_code=303)
        try:
            row, wire, info = await dashboard_row(key, request.path_params["job_id"])
        except ApiError as exc:
            return HTMLResponse(f"<p>{escape(exc.message)}</p>", status_code=exc.status)
        checkpoints: list[dict[str, Any]] = []
        try:
            listed = await jobs.checkpoints(key, row.local_id, {"limit": "100"})
            checkpoints = listed["data"]
        except ApiError:
            pass  # a backend without checkpoints still shows its curves
        live = not (row.job_status is not None and row.job_status.is_terminal)
        return HTMLResponse(_dashboard.job_page(wire, info, checkpoints, live))

    async def chart(request: Request) -> Response:
        key = keys.of(request, cookie=True)
        if key is None:
            return _error_response(ApiError(401, "log in first", code="invalid_api_key"))
        try:
            row, wire, info = await dashboard_row(key, request.path_params["job_id"])
        except ApiError as exc:
            return _error_response(exc)
        live = not (row.job_status is not None and row.job_status.is_terminal)
        headers = {"x-job-status": wire["status"], "x-job-live": "1" if live else "0"}
        return HTMLResponse(_dashboard.chart_svg(info["train"], info["valid"]), headers=headers)

    async def login(request: Request) -> Response:
        host = request.client.host if request.client else "?"
        try:
            limiter.take(f"login:{host}")
        except ApiError as exc:
            return HTMLResponse(_dashboard.login_page(exc.message), status_code=429)
        form = await request.form(max_files=0, max_fields=5)
        secret = form.get("key")
        key = keys.check(secret) if isinstance(secret, str) and secret else None
        if key is None:
            return HTMLResponse(_dashboard.login_page("wrong API key"), status_code=401)
        token = keys.login(key)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict"
        )
        return response

    async def logout(request: Request) -> Response:
        keys.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = f"Invalid URL ({request.method} {request.url.path})"
        return JSONResponse(envelope(status, message), status_code=status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            reattached = await jobs.start(tg)
            if reattached:
                logger.info("reattached %d unsettled job(s)", reattached)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        await jobs.aclose()

    base = "/v1/fine_tuning/jobs/{job_id}"
    routes = [
        Route("/v1/files", api(upload), methods=["POST"]),
        Route("/v1/files", api(list_files), methods=["GET"]),
        Route("/v1/files/{file_id}", api(get_file), methods=["GET"]),
        Route("/v1/files/{file_id}", api(delete_file), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", api(file_content), methods=["GET"]),
        Route("/v1/fine_tuning/jobs", api(create_job), methods=["POST"]),
        Route("/v1/fine_tuning/jobs", api(list_jobs), methods=["GET"]),
        Route(base, api(get_job), methods=["GET"]),
        Route(f"{base}/cancel", api(action("cancel")), methods=["POST"]),
        Route(f"{base}/pause", api(action("pause")), methods=["POST"]),
        Route(f"{base}/resume", api(action("resume")), methods=["POST"]),
        Route(f"{base}/events", api(job_events), methods=["GET"]),
        Route(f"{base}/checkpoints", api(job_checkpoints), methods=["GET"]),
        Route("/v1/fine_tuning/alpha/graders/run", api(run_grader), methods=["POST"]),
        Route("/v1/fine_tuning/alpha/graders/validate", api(validate_grader), methods=["POST"]),
        Route("/graders/{name}/score", api(score), methods=["POST"]),
        Route("/", home_page, methods=["GET"]),
        Route("/jobs/{job_id}", job_html, methods=["GET"]),
        Route("/dashboard/jobs/{job_id}/chart", chart, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: not_found},
    )
    app.add_middleware(BodyLimit, limit=options.max_body_bytes)
    app.state.jobs = jobs
    app.state.files = files
    return app
