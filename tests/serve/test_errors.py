"""Backend errors met while serving become refusals with a status that says whose fault it is."""

from __future__ import annotations

import pytest

from rlft.exceptions import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    HyperparameterError,
    NotFoundError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from rlft.serve._errors import from_rlft_error


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFoundError("gone", provider="fake", status_code=404), 404),
        (RateLimitError("slow down", provider="fake", status_code=429), 429),
        (BadRequestError("bad", provider="fake", status_code=400), 400),
        (CapabilityError(provider="bedrock", operation="pause"), 400),
        (HyperparameterError(provider="fake", name="epochs", value=0, allowed=">= 1"), 400),
        # The backend refusing the server's own credentials is not the caller's fault.
        (AuthenticationError("no", provider="azure", status_code=401), 502),
        (ServerError("boom", provider="openai", status_code=503), 502),
        (ProviderConnectionError("refused", provider="openai"), 502),
    ],
)
def test_backend_errors_map_to_fitting_statuses(exc: Exception, status: int) -> None:
    refusal = from_rlft_error(exc)  # type: ignore[arg-type]
    assert refusal.status == status
    body = refusal.body()["error"]
    assert body["message"] and set(body) == {"message", "type", "param", "code"}
