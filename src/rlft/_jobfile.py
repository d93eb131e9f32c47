"""Job files: a whole job described in TOML, for ``rlft run job.toml`` and the examples.

```toml
name = "ticket-triage"
model = "rlft/tiny"                 # optional: the provider's default otherwise
train = "data/train.jsonl"          # paths are relative to this file
validation = "data/valid.jsonl"     # optional (some providers require one)
grader = "grader.json"              # a grader file (JSON/YAML), or an inline [grader] table

[hyperparameters]                   # rlft.Hyperparameters fields
epochs = 1
batch_size = 8

[hyperparameters.provider_options]  # passed through to the backend
logging_steps = 5

[labels]
team = "support"
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pydantic

from rlft._models import Hyperparameters
from rlft._spec import JobSpec
from rlft.exceptions import ConfigurationError

__all__ = ["load_job_file"]

_KEYS = {
    "name",
    "model",
    "train",
    "validation",
    "grader",
    "hyperparameters",
    "labels",
    "response_format",
}


def load_job_file(path: str | Path) -> JobSpec:
    """Read a job file into a ``JobSpec``, loading its datasets and grader.

    Raises:
        ConfigurationError: The file is missing, not TOML, or has unknown or invalid keys
            (named with the fix).
        DatasetValidationError: A dataset file has problems (every one listed).
        GraderValidationError: The grader is malformed.
    """
    from rlft import graders
    from rlft.datasets import Dataset

    file = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{file}: no such job file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{file}: not valid TOML: {exc}") from exc

    unknown = sorted(set(data) - _KEYS)
    if unknown:
        allowed = ", ".join(sorted(_KEYS))
        raise ConfigurationError(
            f"{file}: unknown key(s) {', '.join(unknown)}; a job file has {allowed}"
        )
    for required in ("train", "grader"):
        if required not in data:
            raise ConfigurationError(f"{file}: missing {required!r} (see docs/jobs.md)")

    here = file.parent
    grader_value = data["grader"]
    grader = (
        graders.from_openai(grader_value)
        if isinstance(grader_value, dict)
        else graders.load(here / str(grader_value))
    )
    try:
        hyperparameters = Hyperparameters.model_validate(data.get("hyperparameters", {}))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"hyperparameters.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"{file}: {problems}") from None
    validation = data.get("validation")
    return JobSpec(
        name=data.get("name"),
        model=data.get("model"),
        train=Dataset.from_jsonl(here / str(data["train"])),
        validation=Dataset.from_jsonl(here / str(validation)) if validation else None,
        grader=grader,
        hyperparameters=hyperparameters,
        labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
        response_format=data.get("response_format"),
    )
