"""The one place where HTTP failures become ``rlft.exceptions``.

Every call ``OpenAICompatClient`` makes runs inside ``map_http_errors``; no ``httpx`` exception
type escapes it. The most specific class wins and the original is chained as ``__cause__``.
Messages and bodies are masked: known secrets, bearer tokens and ``sk-`` keys never leave here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from rlft._secrets import MASK, redact
from rlft.exceptions import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from rlft.openai_compat._retry import parse_retry_after

__all__ = [
    "REQUEST_ID_HEADERS",
    "CallState",
    "ErrorHint",
    "MalformedResponseError",
    "malformed",
    "map_http_errors",
    "mask",
    "parse_error_body",
]

REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-ms-request-id", "request-id")
"""Where OpenAI (``x-request-id``), Azure (``apim-request-id``) and ARM put the request id."""

ErrorHint = Callable[[int, "str | None", "str | None"], "str | None"]
"""``(status, code, param) -> extra text``: a provider's advice appended to an error message."""

_MASK = MASK
_MAX_TEXT = 500


class MalformedResponseError(Exception):
    """A response the backend sent that is not the JSON we expected (raised inside the boundary)."""

    def __init__(self, response: httpx.Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def malformed(provider: str, what: str, detail: Any) -> ProviderAPIError:
    """An error for a JSON answer of the wrong shape (a page without ``data``, a job without
    ``id``): the backend broke the protocol, so callers get a ``ProviderAPIError``."""
    preview = repr(detail)[:200]
    return ProviderAPIError(
        f"unexpected response for {what}: {preview}", provider=provider, code="malformed_response"
    )


@dataclass
class CallState:
    """What the boundary needs to know about the call it wraps; the request loop fills it in."""

    method: str = ""
    path: str = ""
    attempts: int = 0
    timeout: float | None = None
    hints: list[ErrorHint] = field(default_factory=list)


def mask(value: Any, secrets: Iterable[str]) -> Any:
    """Return ``value`` with every secret replaced, recursing into dicts and lists.

    ``secrets`` are this call's own values (a key, the last bearer token); every secret registered
    with ``rlft.provider.register_secret`` and every ``sk-`` key or bearer token is masked too.
    """
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 4:  # never mask "a" out of every word
                value = value.replace(secret, _MASK)
        return redact(value)
    if isinstance(value, Mapping):
        return {key: mask(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item, secrets) for item in value]
    return value


def parse_error_body(response: httpx.Response) -> tuple[Any, str | None, str | None, str | None]:
    """Return ``(body, message, code, param)`` from an OpenAI or Azure error envelope.

    OpenAI sends ``{"error": {"message", "type", "param", "code"}}``; Azure's classic API adds
    ``target``, ``details`` and ``innererror`` (reference/openai_azure.md §1.7, §5.10). Anything
    else (an HTML page from a proxy) is kept as truncated text.
    """
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text[:_MAX_TEXT] if response.content else ""
        return text, (text.strip() or None), None, None
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, str):
        return body, error, None, None
    if not isinstance(error, dict):
        return body, None, None, None
    message = _text(error.get("message"))
    code = _text(error.get("code")) or _text(error.get("type"))
    param = _text(error.get("param")) or _text(error.get("target"))
    inner = error.get("innererror")
    if isinstance(inner, dict) and _text(inner.get("code")):
        message = f"{message} ({inner['code']})" if message else _text(inner.get("code"))
    return body, message, code, param


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _request_id(response: httpx.Response | None) -> str | None:
    if response is None:
        return None
    for name in REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


def _live(secrets: Iterable[str]) -> list[str]:
    # Read when an error is raised, not on entry: a token refreshed mid-call is masked too.
    return [secret for secret in secrets if secret]


def _attempts_note(state: CallState) -> str:
    return f" (gave up after {state.attempts} attempts)" if state.attempts > 1 else ""


def _status_error(
    response: httpx.Response, *, provider: str, state: CallState, secrets: list[str]
) -> ProviderAPIError:
    status = response.status_code
    body, message, code, param = parse_error_body(response)
    message = message or response.reason_phrase or f"HTTP {status}"
    text = f"{state.method} {state.path} failed with HTTP {status}: {message}"
    for hint in state.hints:
        extra = hint(status, code, param)
        if extra:
            text = f"{text}. {extra}"
            break
    text += _attempts_note(state)
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status_code": status,
        "code": code,
        "param": param,
        "body": mask(body, secrets),
        "request_id": _request_id(response),
    }
    text = mask(text, secrets)
    if status in (400, 422):
        return BadRequestError(text, **kwargs)
    if status == 401:
        return AuthenticationError(text, **kwargs)
    if status == 403:
        return PermissionDeniedError(text, **kwargs)
    if status == 404:
        return NotFoundError(text, **kwargs)
    if status == 429:
        return RateLimitError(text, retry_after=parse_retry_after(response), **kwargs)
    if status >= 500:
        return ServerError(text, **kwargs)
    return ProviderAPIError(text, **kwargs)


@contextmanager
def map_http_errors(
    provider: str, *, secrets: Iterable[str] = (), state: CallState | None = None
) -> Iterator[CallState]:
    """Translate ``httpx`` failures raised inside the block into ``rlft.exceptions``.

    Args:
        provider: The provider id every error carries.
        secrets: A collection of values to mask in messages and bodies (API keys, tokens); read
            when an error is raised, so values added during the call are masked too.
        state: The call being made; the block may update it (attempts, hints).

    Yields:
        The ``CallState`` the request loop fills in, so errors can say what was tried.

    Raises:
        ProviderAPIError: A subclass chosen by HTTP status (``BadRequestError`` for 400/422,
            ``AuthenticationError`` 401, ``PermissionDeniedError`` 403, ``NotFoundError`` 404,
            ``RateLimitError`` 429, ``ServerError`` 5xx) or by a malformed body.
        ProviderConnectionError: The backend could not be reached or did not answer in time.
    """
    state = state or CallState()
    try:
        yield state
    except httpx.HTTPStatusError as exc:
        raise _status_error(
            exc.response, provider=provider, state=state, secrets=_live(secrets)
        ) from exc
    except MalformedResponseError as exc:
        hidden = _live(secrets)
        preview = exc.response.text[:200] if exc.response.content else "<empty>"
        text = (
            f"{state.method} {state.path} answered HTTP {exc.response.status_code} with "
            f"{exc.reason}: {preview!r}"
        )
        raise ProviderAPIError(
            mask(text, hidden),
            provider=provider,
            status_code=exc.response.status_code,
            code="malformed_response",
            body=mask(preview, hidden),
            request_id=_request_id(exc.response),
        ) from exc
    except httpx.TimeoutException as exc:
        hidden = _live(secrets)
        after = f" after {state.timeout:g}s" if state.timeout else ""
        text = f"{state.method} {state.path} timed out{after} ({type(exc).__name__})"
        raise ProviderConnectionError(
            mask(text + _attempts_note(state), hidden), provider=provider
        ) from exc
    except httpx.TransportError as exc:
        hidden = _live(secrets)
        detail = mask(str(exc), hidden) or type(exc).__name__
        text = f"{state.method} {state.path} could not reach the backend: {detail}"
        raise ProviderConnectionError(text + _attempts_note(state), provider=provider) from exc
