"""JobSpec: everything a job is made of, before any backend sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlft._models import Hyperparameters
from rlft.datasets import Dataset
from rlft.graders import Grader

__all__ = ["CreateJobRequest", "JobSpec"]


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


@dataclass(frozen=True, kw_only=True)
class CreateJobRequest:
    """What ``Provider.create_job`` receives: a checked spec, its compiled grader, uploaded files.

    Attributes:
        spec: The job spec, already validated against the provider's rules.
        grader_payload: ``rlft.graders.compile(spec.grader, provider.name)``.
        training_file: The id ``upload_dataset`` returned for ``spec.train``.
        validation_file: The id for ``spec.validation``, if there is one.
        idempotency_key: Derived from the spec and a client nonce: a provider that finds a job
            carrying this key must return it instead of creating a second one.
    """

    spec: JobSpec
    grader_payload: Any
    training_file: str
    validation_file: str | None
    idempotency_key: str
