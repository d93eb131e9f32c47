"""The one place botocore errors become ``rlft.exceptions``.

Every AWS call of the provider runs inside ``map_bedrock_errors()``; no botocore exception type
appears anywhere else. The most specific class wins, and the original is chained (``from exc``)
with its code, status, request id and attempt count kept as attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.exceptions

from rlft.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderAPIError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)

__all__ = ["CONFLICT_CODES", "map_bedrock_errors"]

PROVIDER = "bedrock"

# Error codes of the services we call (bedrock, s3, iam, lambda, sts). Sources: the botocore
# service models' modelled errors, and https://docs.aws.amazon.com/general/latest/gr/api-retries.html
_BY_CODE: dict[str, type[ProviderAPIError]] = {
    "AccessDenied": PermissionDeniedError,
    "AccessDeniedException": PermissionDeniedError,
    "UnauthorizedOperation": PermissionDeniedError,
    "UnrecognizedClientException": AuthenticationError,
    "InvalidClientTokenId": AuthenticationError,
    "InvalidAccessKeyId": AuthenticationError,
    "SignatureDoesNotMatch": AuthenticationError,
    "ExpiredToken": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
    "ValidationException": BadRequestError,
    "ValidationError": BadRequestError,
    "InvalidParameterValueException": BadRequestError,
    "InvalidRequestContentException": BadRequestError,
    "MalformedPolicyDocument": BadRequestError,
    "ThrottlingException": RateLimitError,
    "Throttling": RateLimitError,
    "TooManyRequestsException": RateLimitError,
    "RequestLimitExceeded": RateLimitError,
    "SlowDown": RateLimitError,
    # A quota (concurrent jobs, functions) clears when something finishes: a rate limit, not a bug.
    "ServiceQuotaExceededException": RateLimitError,
    "ResourceNotFoundException": NotFoundError,
    "NoSuchEntity": NotFoundError,
    "NoSuchBucket": NotFoundError,
    "NoSuchKey": NotFoundError,
    "NotFound": NotFoundError,
    "404": NotFoundError,
    "InternalServerException": ServerError,
    "InternalFailure": ServerError,
    "ServiceException": ServerError,
    "ServiceUnavailable": ServerError,
    "ServiceUnavailableException": ServerError,
}

CONFLICT_CODES = frozenset(
    {
        "ConflictException",
        "ResourceInUseException",  # moto 5.2.5 on a duplicate jobName (not in botocore's model)
        "ResourceConflictException",  # Lambda: an update is still in progress
        "EntityAlreadyExists",  # IAM
    }
)
"""Codes meaning "it exists already / it is busy"; raised as ``BadRequestError`` with ``code``."""


def _by_status(status: int | None) -> type[ProviderAPIError]:
    if status is None:
        return ProviderAPIError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if status >= 400:
        return BadRequestError
    return ProviderAPIError


def _from_client_error(exc: botocore.exceptions.ClientError) -> ProviderAPIError:
    response: dict[str, Any] = dict(exc.response)
    error = dict(response.get("Error") or {})
    meta = dict(response.get("ResponseMetadata") or {})
    code = str(error.get("Code") or "") or None
    status = meta.get("HTTPStatusCode")
    status = int(status) if status is not None else None
    cls = (_BY_CODE.get(code) if code else None) or _by_status(status)
    if code in CONFLICT_CODES:
        cls = BadRequestError
    attempts = int(meta.get("RetryAttempts") or 0) + 1
    message = str(error.get("Message") or exc)
    operation = getattr(exc, "operation_name", "") or "call"
    text = f"{operation} failed: {code or status}: {message}"
    if attempts > 1:  # the layer that gave up says how often it tried
        text += f" (gave up after {attempts} attempts)"
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "status_code": status,
        "code": code,
        "body": {"Code": code, "Message": message},
        "request_id": meta.get("RequestId"),
        "attempts": attempts,
        "operation": operation,
    }
    if cls is RateLimitError:
        kwargs["retry_after"] = None  # AWS sends no Retry-After; botocore already backed off
    return cls(text, **kwargs)


@contextmanager
def map_bedrock_errors() -> Iterator[None]:
    """Translate botocore and credential errors raised inside the block to ``rlft.exceptions``.

    Raises:
        ProviderAPIError: A subclass by error code, else by HTTP status.
        ProviderConnectionError: The endpoint could not be reached or timed out.
        ConfigurationError: No credentials, no region, an unknown profile.
    """
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        raise _from_client_error(exc) from exc
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
        botocore.exceptions.CredentialRetrievalError,
    ) as exc:
        raise ConfigurationError(
            f"no usable AWS credentials ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or name a profile with AWS_PROFILE (or [bedrock] profile in rlft.toml) after "
            "`aws configure` / `aws sso login`"
        ) from exc
    except botocore.exceptions.NoRegionError as exc:
        raise ConfigurationError(
            "no AWS region; set [bedrock] region in rlft.toml, RLFT_BEDROCK_REGION or AWS_REGION"
        ) from exc
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigurationError(
            f"{exc}; fix [bedrock] profile in rlft.toml (or AWS_PROFILE), or list profiles with "
            "`aws configure list-profiles`"
        ) from exc
    except botocore.exceptions.ParamValidationError as exc:
        # botocore's own check (minimums, types): rlft's validation should have caught it first.
        raise BadRequestError(
            f"request refused by botocore before sending: {exc}",
            provider=PROVIDER,
            code="ParamValidationError",
        ) from exc
    except botocore.exceptions.WaiterError as exc:
        raise ServerError(f"gave up waiting: {exc}", provider=PROVIDER, code="WaiterError") from exc
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ProxyConnectionError,
    ) as exc:
        raise ProviderConnectionError(f"could not reach AWS: {exc}", provider=PROVIDER) from exc
