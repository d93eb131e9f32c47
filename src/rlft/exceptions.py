"""Every error rlft raises, in one tree.

```
RLFTError
├── UsageError                  your mistake; raised before any upload; never retried
│   ├── ConfigurationError        bad or missing setting or credential; names the fix
│   ├── MissingDependencyError    also ImportError; "pip install 'rlft[bedrock]'"
│   ├── UnknownProviderError      also LookupError; "did you mean 'bedrock'?"
│   ├── DatasetValidationError    path, line, field, fix
│   ├── GraderValidationError     bad template, unknown item.* field
│   ├── GraderNotSupportedError   grader path, target, hint
│   ├── HyperparameterError       provider, name, value, allowed range
│   └── CapabilityError           provider, operation
├── PluginError
│   ├── PluginLoadError           entry-point name and value; __cause__ is the real error
│   └── DuplicateProviderError    both factories
├── ProviderError               provider, request_id
│   ├── ProviderConnectionError   network or timeout; retryable
│   └── ProviderAPIError          status_code, code, param, body (secrets masked)
│       ├── BadRequestError         400/422: our validation missed something; file a bug
│       ├── AuthenticationError     401
│       ├── PermissionDeniedError   403, AccessDeniedException
│       ├── NotFoundError           404, ResourceNotFoundException
│       ├── RateLimitError          429, ThrottlingException; retry_after
│       └── ServerError             5xx; retryable
└── JobError                    job
    ├── JobFailedError            from job.raise_for_status()
    └── JobCancelledError         from job.raise_for_status()
```

A *call* that fails raises; a *job* that fails is data (``Job.status == "failed"``) until you opt
in with ``job.raise_for_status()``. Every error keeps its structured attributes through pickling,
so errors cross worker processes intact.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rlft._secrets import redact, redact_value, scrub_current_exception

if TYPE_CHECKING:
    from rlft._job import Job

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CapabilityError",
    "ConfigurationError",
    "DatasetValidationError",
    "DuplicateProviderError",
    "GraderNotSupportedError",
    "GraderValidationError",
    "HyperparameterError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "PluginLoadError",
    "ProviderAPIError",
    "ProviderConnectionError",
    "ProviderError",
    "RLFTError",
    "RateLimitError",
    "ServerError",
    "UnknownProviderError",
    "UsageError",
]


class RLFTError(Exception):
    """Base class of every error rlft raises.

    Subclasses take keyword arguments, keep them as attributes, and build their message from them,
    so ``pickle`` round-trips them through ``__reduce__``. Every registered secret is masked in the
    message, in string attributes and in the exception being handled when this one is made (it
    becomes ``__context__``, usually ``__cause__``): see ``docs/security.md``.
    """

    def __init__(self, message: str = "", **attrs: Any) -> None:
        attrs = {key: redact_value(value) for key, value in attrs.items()}
        self._attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)
        self._message = redact(message or self._format())
        super().__init__(self._message)
        scrub_current_exception()

    def _format(self) -> str:
        return self.__class__.__name__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, self._message, self._attrs))


def _rebuild(cls: type[RLFTError], message: str, attrs: dict[str, Any]) -> RLFTError:
    error = cls.__new__(cls)
    RLFTError.__init__(error, message, **attrs)
    return error


# --- usage ------------------------------------------------------------------------------------


class UsageError(RLFTError):
    """The caller's mistake, found before anything was uploaded or paid for. Never retried."""


class ConfigurationError(UsageError):
    """A setting or credential is missing or wrong; the message names key, source and fix."""


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency is not installed. The message is the exact ``pip install`` command.

    Attributes:
        feature: What needs it (``"provider 'bedrock'"``).
        package: The missing import name.
        extra: The rlft extra that installs it.
    """

    feature: str
    package: str
    extra: str | None

    def __init__(self, feature: str, *, package: str, extra: str | None = None) -> None:
        super().__init__(feature=feature, package=package, extra=extra)

    def _format(self) -> str:
        fix = f"pip install 'rlft[{self.extra}]'" if self.extra else f"pip install {self.package}"
        return f"{self.feature} needs {self.package}: {fix}"


class UnknownProviderError(UsageError, LookupError):
    """No plugin registered a provider of that name. The message suggests the closest one."""

    name: str
    known: list[str]

    def __init__(self, name: str, *, known: Iterable[str]) -> None:
        super().__init__(name=name, known=sorted(known))

    def _format(self) -> str:
        message = f"unknown provider {self.name!r}"
        close = difflib.get_close_matches(self.name, self.known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        known = ", ".join(self.known) or "none"
        return f"{message} (known providers: {known}; `rlft providers` lists them)"


class DatasetValidationError(UsageError):
    """A dataset failed validation. ``report`` holds every problem, each with file, line and fix."""

    report: Any

    def __init__(self, message: str, *, report: Any = None) -> None:
        super().__init__(message, report=report)


class GraderValidationError(UsageError):
    """A grader is malformed: a bad template, operation, formula or Python source.

    Attributes:
        path: Where in the grader (``"graders.why.input"``), or ``""`` for the grader itself.
    """

    path: str

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message, path=path)


class GraderNotSupportedError(UsageError):
    """A grader uses a feature the target backend cannot express.

    Attributes:
        path: The grader path (``"graders.why"``).
        target: The compile target (``"openai"``, ``"bedrock"``, ...).
        hint: What to do instead.
    """

    path: str
    target: str
    hint: str

    def __init__(self, *, path: str, target: str, reason: str, hint: str = "") -> None:
        super().__init__(path=path or "<grader>", target=target, reason=reason, hint=hint)

    def _format(self) -> str:
        attrs = self._attrs
        message = f"{attrs['path']}: {attrs['reason']} (target {attrs['target']!r})"
        return f"{message}; {attrs['hint']}" if attrs["hint"] else message


class HyperparameterError(UsageError):
    """A hyperparameter is out of the provider's documented range."""

    provider: str
    name: str
    value: Any
    allowed: str

    def __init__(self, *, provider: str, name: str, value: Any, allowed: str) -> None:
        super().__init__(provider=provider, name=name, value=value, allowed=allowed)

    def _format(self) -> str:
        return (
            f"hyperparameter {self.name}={self.value!r} is out of range for provider "
            f"{self.provider!r}: allowed {self.allowed}"
        )


class CapabilityError(UsageError):
    """The provider cannot do this operation (for example, Bedrock cannot pause a job)."""

    provider: str
    operation: str
    reason: str

    def __init__(self, *, provider: str, operation: str, reason: str = "") -> None:
        super().__init__(provider=provider, operation=operation, reason=reason)

    def _format(self) -> str:
        message = f"provider {self.provider!r} does not support {self.operation}"
        return f"{message}: {self.reason}" if self.reason else message


# --- plugins ----------------------------------------------------------------------------------


class PluginError(RLFTError):
    """A plugin could not be loaded or registered."""


class PluginLoadError(PluginError):
    """An entry point failed to import. ``__cause__`` is the real error."""

    name: str
    value: str

    def __init__(self, *, name: str, value: str) -> None:
        super().__init__(name=name, value=value)

    def _format(self) -> str:
        return (
            f"plugin entry point {self.name!r} ({self.value}) failed to load; "
            f"block it with RLFT_BLOCKED_PLUGINS={self.name} or fix the plugin"
        )


class DuplicateProviderError(PluginError):
    """Two plugins registered the same provider name."""

    name: str
    factories: tuple[str, str]

    def __init__(self, *, name: str, factories: Sequence[str]) -> None:
        super().__init__(name=name, factories=tuple(factories))

    def _format(self) -> str:
        first, second = self.factories
        return f"provider {self.name!r} is registered twice: by {first} and by {second}"


# --- provider calls ---------------------------------------------------------------------------


class ProviderError(RLFTError):
    """A call to a backend failed.

    Attributes:
        provider: The provider id.
        request_id: The backend's request id, when it sent one (quote it to their support).
    """

    provider: str
    request_id: str | None

    def __init__(self, message: str, *, provider: str, request_id: str | None = None, **attrs: Any):
        super().__init__(message, provider=provider, request_id=request_id, **attrs)

    def __str__(self) -> str:
        text = f"[{self.provider}] {super().__str__()}"
        return f"{text} (request id {self.request_id})" if self.request_id else text


class ProviderConnectionError(ProviderError):
    """The backend could not be reached, or did not answer in time. Retryable."""


class ProviderAPIError(ProviderError):
    """The backend answered with an error.

    Attributes:
        status_code: HTTP status, when there is one.
        code: The backend's error code (``"invalid_request_error"``, ``"ValidationException"``).
        param: The request field the backend blamed, when it says.
        body: The error body, with secrets masked.
    """

    status_code: int | None
    code: str | None
    param: str | None
    body: Any

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        code: str | None = None,
        param: str | None = None,
        body: Any = None,
        request_id: str | None = None,
        **attrs: Any,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            request_id=request_id,
            status_code=status_code,
            code=code,
            param=param,
            body=body,
            **attrs,
        )


class BadRequestError(ProviderAPIError):
    """400/422: the backend refused the request. rlft should have caught it first: please report."""


class AuthenticationError(ProviderAPIError):
    """401: the credential is missing, wrong or expired."""


class PermissionDeniedError(ProviderAPIError):
    """403 or AccessDenied: the account, role or organisation may not do this."""


class NotFoundError(ProviderAPIError, LookupError):
    """404 or ResourceNotFound: the job, file or model does not exist (or was retired)."""


class RateLimitError(ProviderAPIError):
    """429 or Throttling. ``retry_after`` is the backend's hint in seconds, when it gave one."""

    retry_after: float | None

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)


class ServerError(ProviderAPIError):
    """5xx: the backend failed. Retryable."""


# --- job outcomes -----------------------------------------------------------------------------


class JobError(RLFTError):
    """A job ended without success; raised only by ``job.raise_for_status()``."""

    job: Job

    def __init__(self, message: str, *, job: Job) -> None:
        super().__init__(message, job=job)


class JobFailedError(JobError):
    """The job failed. ``job.error`` has the backend's reason."""


class JobCancelledError(JobError):
    """The job was cancelled."""
