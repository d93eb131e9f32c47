"""A small client for OpenAI-compatible HTTP APIs over ``httpx.AsyncClient``.

It owns what every OpenAI-compatible backend shares: a base URL and fixed query parameters
(Azure's ``api-version``), an async auth hook (static keys, refreshed Entra tokens, signed
requests), the retry loop, JSON parsing, cursor pagination and multipart upload. Everything it
raises comes from ``rlft.exceptions`` through ``map_http_errors``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import httpx

from rlft._secrets import register_secret
from rlft.openai_compat._errors import (
    REQUEST_ID_HEADERS,
    CallState,
    ErrorHint,
    MalformedResponseError,
    malformed,
    map_http_errors,
)
from rlft.openai_compat._retry import RetryPolicy, parse_retry_after, retryable

__all__ = ["AuthHook", "OpenAICompatClient", "Sleep"]

log = logging.getLogger("rlft.http")

AuthHook = Callable[[], Awaitable[Mapping[str, str]]]
"""Returns the auth headers for one attempt; called before every attempt so tokens can refresh."""
Sleep = Callable[[float], Awaitable[None]]
"""How the client waits between attempts (``anyio.sleep``; tests inject a recorder)."""


class OpenAICompatClient:
    """An OpenAI-compatible HTTP client: retries, error mapping, pagination, uploads.

    Args:
        provider: The provider id errors carry (``"openai"``, ``"azure"``, ``"bedrock"``).
        base_url: Where paths are resolved (``https://api.openai.com/v1``).
        auth: An async hook returning auth headers; every value it returns is treated as a
            secret and masked in errors.
        headers: Fixed headers sent with every request (``OpenAI-Organization``).
        query: Fixed query parameters sent with every request (``{"api-version": ...}``).
        transport: An ``httpx`` transport to use instead of the network (tests, proxies).
        timeout: Seconds per attempt.
        retry: The retry policy; ``RetryPolicy()`` by default.
        sleep: How to wait between attempts; ``anyio.sleep`` by default.
        secrets: More values to mask in errors (a key used in a query string).
        hints: Advice appended to errors, asked in order until one answers.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        auth: AuthHook | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        secrets: Iterable[str] = (),
        hints: Iterable[ErrorHint] = (),
    ) -> None:
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self._auth = auth
        self._sleep = sleep or anyio.sleep
        self._timeout = timeout
        self._secrets: set[str] = {secret for secret in secrets if secret}
        for secret in self._secrets:
            register_secret(secret)
        self._hints = list(hints)
        self._closed = False
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            params=dict(query or {}),
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # never replay an api-key header to another origin
        )

    @property
    def base_url(self) -> str:
        """The base URL paths are resolved against."""
        return str(self._http.base_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, base_url={self.base_url!r})"

    # --- requests -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        hints: Iterable[ErrorHint] = (),
        raw: bool = False,
    ) -> Any:
        """Send one logical request (retrying as the policy allows) and return its JSON.

        Args:
            method: The HTTP method.
            path: Relative to the base URL.
            json: A JSON body.
            params: Query parameters, added to the fixed ones.
            files: Multipart files (``{"file": (name, bytes, content_type)}``).
            data: Multipart form fields sent with ``files``.
            headers: Extra headers for this request.
            idempotent: Whether repeating the call is harmless. ``None``: GET/PUT/DELETE are,
                POST/PATCH are not (retried only when they provably never landed).
            hints: Advice for errors of this call, asked before the client's own hints.
            raw: Return the body as bytes instead of parsing JSON.

        Returns:
            The parsed JSON (``None`` for an empty body), or bytes when ``raw``.

        Raises:
            ProviderAPIError: The backend answered with an error or a body that is not JSON.
            ProviderConnectionError: The backend could not be reached or timed out.
        """
        state = CallState(
            method=method.upper(), path=path, timeout=self._timeout, hints=[*hints, *self._hints]
        )
        with map_http_errors(self.provider, secrets=self._secrets, state=state):
            response = await self._send(
                state,
                json=json,
                params=params,
                files=files,
                data=data,
                headers=headers,
                idempotent=idempotent,
            )
            if raw:
                return response.content
            if not response.content.strip():
                return None
            try:
                return response.json()
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedResponseError(response, "a body that is not JSON") from exc

    async def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` a JSON resource."""
        return await self.request("GET", path, params=params)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        idempotent: bool | None = None,
        hints: Iterable[ErrorHint] = (),
    ) -> Any:
        """``POST`` JSON. Not retried after it may have landed unless ``idempotent``."""
        return await self.request("POST", path, json=json, idempotent=idempotent, hints=hints)

    async def upload(
        self,
        path: str,
        *,
        filename: str,
        content: bytes,
        fields: Mapping[str, str],
        content_type: str = "application/jsonl",
    ) -> Any:
        """``POST`` a multipart upload: one ``file`` part plus form ``fields``."""
        files = {"file": (filename, content, content_type)}
        return await self.request("POST", path, files=files, data=fields)

    async def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the items of a cursor-paginated list (``{"data": [...], "has_more": bool}``).

        The cursor for the next page is ``last_id`` when the backend sends it, else the last
        item's ``id``, passed back as ``after``.

        Args:
            path: The list endpoint.
            params: Filters (``{"metadata[key]": "value"}``).
            page_size: Items asked per page.
            limit: Stop after this many items.
        """
        after: str | None = None
        yielded = 0
        while True:
            query = {**(params or {}), "limit": page_size}
            if after is not None:
                query["after"] = after
            page = await self.get(path, params=query)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise malformed(self.provider, f"GET {path} (a list page)", page)
            for item in data:
                if not isinstance(item, dict):
                    raise malformed(self.provider, f"GET {path} (a list item)", item)
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = page.get("last_id") or (data[-1].get("id") if data else None)
            if not data or not page.get("has_more") or not cursor or cursor == after:
                return  # a repeated cursor would loop forever: trust has_more no further
            after = str(cursor)

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()

    # --- the retry loop -----------------------------------------------------------------------

    async def _auth_headers(self) -> dict[str, str]:
        if self._auth is None:
            return {}
        headers = dict(await self._auth())
        for value in headers.values():
            self._secrets.add(value)
            register_secret(value)  # masked process-wide: errors, logs, events, the store
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic"):
                self._secrets.add(token)
                register_secret(token)
        return headers

    async def _send(
        self,
        state: CallState,
        *,
        idempotent: bool | None,
        headers: Mapping[str, str] | None,
        **content: Any,
    ) -> httpx.Response:
        while True:
            state.attempts += 1
            request = self._http.build_request(
                state.method,
                state.path,
                headers={**(headers or {}), **await self._auth_headers()},
                **content,
            )
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                if not self._may_retry(state, exc=exc, idempotent=idempotent):
                    raise
                await self._wait(state, self.retry.backoff(state.attempts), type(exc).__name__)
                continue
            self._log(state, response)
            if response.is_success:
                return response
            if self._may_retry(state, response=response, idempotent=idempotent):
                hinted = parse_retry_after(response)
                if hinted is None or hinted <= self.retry.max_retry_after:
                    delay = self.retry.backoff(state.attempts) if hinted is None else hinted
                    await self._wait(state, delay, f"HTTP {response.status_code}")
                    continue
            response.raise_for_status()
            raise MalformedResponseError(response, f"an unexpected HTTP {response.status_code}")

    def _may_retry(
        self,
        state: CallState,
        *,
        response: httpx.Response | None = None,
        exc: Exception | None = None,
        idempotent: bool | None,
    ) -> bool:
        if state.attempts > self.retry.max_retries:
            return False
        return retryable(state.method, response=response, exc=exc, idempotent=idempotent)

    async def _wait(self, state: CallState, delay: float, why: str) -> None:
        log.info(
            "%s %s: %s, retrying in %.2fs (attempt %d of %d)",
            state.method,
            state.path,
            why,
            delay,
            state.attempts + 1,
            self.retry.max_retries + 1,
        )
        await self._sleep(delay)

    def _log(self, state: CallState, response: httpx.Response) -> None:
        request_id = next(
            (response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None
        )
        log.debug(
            "%s %s -> %d (attempt %d, request id %s)",
            state.method,
            state.path,
            response.status_code,
            state.attempts,
            request_id,
        )
