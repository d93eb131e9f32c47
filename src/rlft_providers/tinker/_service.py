"""The one place that talks to the ``tinker`` SDK's clients: connect, check the model, retry.

Imported by the worker and, for ``generate`` and the model check, by the provider in a thread.
The SDK retries each request itself (same sequence id, so the service applies it once); what
is left after its retries is a lost connection, retried here with backoff for calls that
change nothing on the service (sampling, evaluation), and never blindly for an update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "ConnectionLost",
    "ModelNotOffered",
    "check_model",
    "is_connection_error",
    "retrying",
    "service_client",
]

T = TypeVar("T")


class ConnectionLost(Exception):
    """The service stayed unreachable through every retry."""


class ModelNotOffered(Exception):
    """The service does not offer the model for training (the message lists those it does)."""


def service_client(base_url: str | None) -> Any:
    """A ``tinker.ServiceClient`` for ``base_url``; the key comes from ``TINKER_API_KEY``."""
    import tinker

    return tinker.ServiceClient(base_url=base_url)


def is_connection_error(exc: BaseException) -> bool:
    """A network failure or a 5xx/429 the SDK gave up on: worth trying again later."""
    import httpx
    import tinker

    if isinstance(exc, tinker.APIConnectionError | tinker.APITimeoutError | httpx.TransportError):
        return True
    if isinstance(exc, tinker.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, ConnectionError | TimeoutError)


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff: float,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried again after a lost connection up to ``retries`` times (backoff doubles).

    Only for calls that change nothing on the service when repeated.

    Raises:
        ConnectionLost: Still unreachable after the last retry (the message names ``what``).
    """
    delay = backoff
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if attempt == retries:
                raise ConnectionLost(
                    f"lost the connection to the Tinker service during {what} "
                    f"({type(exc).__name__}: {exc}) after {retries + 1} attempts"
                ) from exc
            if on_retry is not None:
                on_retry(
                    f"connection lost during {what} ({type(exc).__name__}); retrying in "
                    f"{delay:g}s ({attempt + 1}/{retries})"
                )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _offered(base_url: str | None, api_key: str | None) -> list[Any]:
    import warnings

    import tinker

    # Not tinker.RestClient(): it shares one holder per (URL, key) across the process and
    # builds it under a process-wide lock while it retries an unreachable service for five
    # minutes, so one bad base_url would block every later check. A ServiceClient's own REST
    # client has its own holder (and opens no session).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # create_rest_client is deprecated
        rest = tinker.ServiceClient(base_url=base_url, api_key=api_key).create_rest_client()
    return list(rest.get_server_capabilities().result().supported_models)


def check_model(
    model: str, *, base_url: str | None, api_key: str | None = None, timeout: float = 30.0
) -> None:
    """Refuse a model the service does not list as trainable (``get_server_capabilities``).

    The question runs in a daemon thread so that ``timeout`` bounds it: the SDK retries an
    unreachable service for five minutes, already while constructing its client.

    Args:
        model: The base model name (or a path, on a self-hosted server).
        base_url: The service; ``None`` is the SDK's default.
        api_key: The key; ``None`` reads ``TINKER_API_KEY``.
        timeout: Seconds to wait for the answer.

    Raises:
        ModelNotOffered: Naming the models the service does offer.
        TimeoutError: No answer within ``timeout``.
    """
    answer: list[Any] = []

    def ask() -> None:
        try:
            answer.append(_offered(base_url, api_key))
        except BaseException as exc:  # handed to the caller below
            answer.append(exc)

    thread = threading.Thread(target=ask, name="rlft-tinker-model-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if not answer:
        raise TimeoutError(f"no answer from the Tinker service within {timeout:g}s")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    offered = [m for m in answer[0] if m.model_name]
    for entry in offered:
        if entry.model_name == model:
            if entry.trainable is False:
                raise ModelNotOffered(
                    f"the Tinker service offers {model!r} for sampling only, not training; "
                    "choose a trainable model"
                )
            return
    names = ", ".join(sorted(str(m.model_name) for m in offered if m.trainable is not False))
    raise ModelNotOffered(
        f"the Tinker service does not offer model {model!r} for training; set `model` to one "
        f"it offers: {names or '(it lists none)'}"
    )
