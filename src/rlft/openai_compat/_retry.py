"""When to retry an HTTP call, and how long to wait. The only retry policy in rlft's HTTP path."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after", "retryable"]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses a read is retried on. 409 is OpenAI's lock timeout (openai-python retries it too)."""

# Errors raised before a single byte of the request left the machine: safe to retry any call.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After``.

    Attributes:
        max_retries: Retries after the first attempt (``0`` disables retrying).
        initial_delay: The first backoff, in seconds.
        max_delay: The longest backoff between two attempts.
        max_retry_after: The longest ``Retry-After`` we wait; a longer one is raised as a
            ``RateLimitError`` carrying ``retry_after`` so the caller can decide.
        jitter: The fraction of each backoff taken off at random (0.25: wait 75-100 %).
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0
    jitter: float = 0.25

    def backoff(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` (1-based) when the server gave no hint."""
        delay = min(self.max_delay, self.initial_delay * 2.0 ** (attempt - 1))
        draw = rng.random() if rng is not None else random.random()
        return delay * (1 - self.jitter * draw)


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, then ``Retry-After`` (seconds or
    an HTTP date). ``None`` when absent or unparsable."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retryable(
    method: str,
    *,
    response: httpx.Response | None = None,
    exc: Exception | None = None,
    idempotent: bool | None = None,
) -> bool:
    """Whether a failed attempt may be repeated without risking a duplicate side effect.

    A POST (a create, an upload, a cancel) is retried only when it provably never landed: a
    connection that was never made, or a 429 (the server refused before acting). Reads, and POSTs
    the caller marks ``idempotent=True`` (grader runs), are retried on 408/409/429/5xx and on any
    transport error.
    """
    safe = idempotent if idempotent is not None else method.upper() not in ("POST", "PATCH")
    if response is not None and response.headers.get("x-should-retry") == "false":
        return False
    if exc is not None:
        if isinstance(exc, _NEVER_SENT):
            return True
        return safe and isinstance(exc, httpx.TransportError)
    if response is None:
        return False
    if response.status_code == 429:
        return True
    status = response.status_code
    return safe and (status in RETRY_STATUSES or (status >= 500 and status not in (501, 505)))
