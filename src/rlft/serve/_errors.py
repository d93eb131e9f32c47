"""OpenAI's error envelope: every refusal the server makes has this shape and a fitting status."""

from __future__ import annotations

from typing import Any

from rlft.exceptions import (
    AuthenticationError,
    CapabilityError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    RateLimitError,
    RLFTError,
    UsageError,
)

__all__ = ["ApiError", "envelope", "from_rlft_error"]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    504: "server_error",
}


class ApiError(Exception):
    """A refusal to send back in OpenAI's envelope.

    Args:
        status: The HTTP status.
        message: One line saying what is wrong and how to fix it.
        param: The request field at fault, if one is.
        code: A stable machine code.
        headers: Extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return envelope(self.status, self.message, param=self.param, code=self.code)


def envelope(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def from_rlft_error(exc: RLFTError, *, param: str | None = None) -> ApiError:
    """Translate an rlft error raised while serving a request to a refusal.

    Backend errors keep their status class; their text is rlft's own (secrets are never in it).
    """
    if isinstance(exc, CapabilityError):
        return ApiError(400, str(exc), param=param, code="unsupported")
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), param=param, code="not_found")
    if isinstance(exc, RateLimitError):
        return ApiError(429, str(exc), code="rate_limit_exceeded")
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        # The backend refused rlft's own credentials: the caller's key is fine, the server is not.
        return ApiError(502, f"the backend refused the server's credentials: {exc}")
    if isinstance(exc, ProviderAPIError):
        status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 502
        return ApiError(status, str(exc), param=param)
    if isinstance(exc, UsageError):
        return ApiError(400, str(exc), param=param)
    return ApiError(502, f"{type(exc).__name__}: {exc}")
