"""JobSpec: everything a job is made of, before any backend sees it."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlft._models import Hyperparameters
from rlft.datasets import Dataset
from rlft.exceptions import UsageError
from rlft.graders import Grader

__all__ = ["CheckedSpec", "CreateJobRequest", "JobSpec"]


class JobSpec(BaseModel):
    """What to train: the model, the data, the grader and the settings. Provider-neutral.

    The same spec runs on every backend; ``Client.jobs.create`` builds one from its keywords.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    model: str | None = None
    """The base model id. ``None`` lets the provider choose (local: the tiny demo model)."""
    train: Dataset
    validation: Dataset | None = None
    grader: Grader
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    name: str | None = None
    """A human name; hosted backends use it as the model suffix where they have one."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free labels, stored with the job and sent as metadata where the backend has it."""
    response_format: dict[str, Any] | None = None
    """A JSON schema response format (``{"type": "json_schema", "json_schema": {...}}``)."""

    def content_hash(self) -> str:
        """A stable hash of everything that defines the job; the key of idempotent creates."""
        payload = {
            "model": self.model,
            "train": self.train.content_hash,
            "validation": self.validation.content_hash if self.validation else None,
            "grader": self.grader.model_dump(mode="json"),
            "hyperparameters": self.hyperparameters.model_dump(mode="json"),
            "name": self.name,
            "labels": self.labels,
            "response_format": self.response_format,
        }
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


_LAZY: Any = object()  # "not compiled yet": no payload value can be this object


@dataclass(frozen=True, kw_only=True)
class CreateJobRequest:
    """What ``Provider.create_job`` receives: a checked spec, its grader, uploaded files.

    The spec was checked once, before any upload (hyperparameters, dataset rules, grader
    support): a backend need not check it again. The grader is compiled by whoever reads
    ``grader_payload``, on first access, once: a backend that grades elsewhere (the local
    runner compiles in its worker) never pays for a compile it does not use.

    Attributes:
        spec: The job spec, already validated against the provider's rules.
        grader_payload: ``rlft.graders.compile(spec.grader, provider.name)``, compiled on first
            access and cached. Pass it to build a request by hand.
        training_file: The id ``upload_dataset`` returned for ``spec.train``.
        validation_file: The id for ``spec.validation``, if there is one.
        idempotency_key: Derived from the spec and a client nonce: a provider that finds a job
            carrying this key must return it instead of creating a second one.
        compile_grader: Builds ``grader_payload`` on first access when none was passed.
    """

    spec: JobSpec
    grader_payload: Any = field(default=_LAZY, repr=False, compare=False)
    training_file: str
    validation_file: str | None = None
    idempotency_key: str
    compile_grader: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def grader_compiled(self) -> bool:
        """True once ``grader_payload`` holds a value (passed in, or compiled on access)."""
        return self.__dict__.get("_grader_payload", _LAZY) is not _LAZY


def _get_payload(self: CreateJobRequest) -> Any:
    state = self.__dict__
    if state.get("_grader_payload", _LAZY) is _LAZY:
        with state["_grader_lock"]:  # two readers in two threads still compile once
            if state.get("_grader_payload", _LAZY) is _LAZY:
                if self.compile_grader is None:
                    raise UsageError(
                        "this CreateJobRequest has no grader payload: pass grader_payload= or "
                        "compile_grader= when building it"
                    )
                state["_grader_payload"] = self.compile_grader()
    return state["_grader_payload"]


def _set_payload(self: CreateJobRequest, value: Any) -> None:
    # Only the generated __init__ gets here (object.__setattr__); the dataclass stays frozen.
    self.__dict__["_grader_payload"] = value
    self.__dict__.setdefault("_grader_lock", threading.Lock())


# The field is declared above (so __init__, replace() and the docs see it); its storage is lazy.
setattr(CreateJobRequest, "grader_payload", property(_get_payload, _set_payload))  # noqa: B010


@dataclass(frozen=True)
class CheckedSpec:
    """A spec that passed every check of one provider endpoint: ``client.jobs.check`` returns it.

    Hand it to ``client.jobs.create(spec=...)`` or ``JobManager.submit`` and the checks (the
    dataset's validation above all) are not run again for that endpoint.

    Attributes:
        spec: The checked spec.
        provider: The provider id it was checked for.
        scope: The provider endpoint it was checked for (see ``rlft._store.scope_of``).
    """

    spec: JobSpec
    provider: str
    scope: str
