"""Job files: a whole job described in TOML, for ``rlft run job.toml`` and the examples.

```toml
name = "ticket-triage"
model = "rlft/tiny"                 # optional: the provider's default otherwise
train = "data/train.jsonl"          # paths are relative to this file
validation = "data/valid.jsonl"     # optional: omit the key for no validation set
grader = "grader.json"              # a grader file (JSON/YAML), or an inline [grader] table

[hyperparameters]                   # rlft.Hyperparameters fields
epochs = 1
batch_size = 8

[hyperparameters.provider_options]  # passed through to the backend
logging_steps = 5

[labels]
team = "support"
```

Every value is type-checked with its line: ``labels = "x"``, ``name = 5`` or ``validation = 0``
are errors with the fix, never a silent default.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from rlft._config import key_line, read_toml, toml_type
from rlft._models import Hyperparameters
from rlft._spec import JobSpec
from rlft.exceptions import ConfigurationError

__all__ = ["load_job_file"]

# key -> (what it must be, an example of the right form)
_KEYS: dict[str, tuple[str, str]] = {
    "name": ("a string", 'name = "ticket-triage"'),
    "model": ("a string", 'model = "rlft/tiny"'),
    "train": ("a string", 'train = "data/train.jsonl"'),
    "validation": (
        "a string",
        'validation = "data/valid.jsonl", or delete the line for no validation set',
    ),
    "grader": ("a string or a table", 'grader = "grader.json", or a [grader] table'),
    "hyperparameters": ("a table", "[hyperparameters] with epochs = 1 below it"),
    "labels": ("a table", '[labels] with team = "support" below it'),
    "response_format": ("a table", '[response_format] with type = "json_schema" below it'),
}
_TYPES: dict[str, tuple[type, ...]] = {"a string": (str,), "a table": (dict,)}
_TYPES["a string or a table"] = (str, dict)


class _JobFile:
    """One job file's text, for errors that name the line of a key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def error(self, key: str, message: str) -> ConfigurationError:
        line = key_line(self.text, key.split(".")[0])
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigurationError(f"{where}: {message}")


def load_job_file(path: str | Path) -> JobSpec:
    """Read a job file into a ``JobSpec``, loading its datasets and grader.

    Raises:
        ConfigurationError: The file is missing, unreadable, not UTF-8 TOML, or has unknown keys
            or values of the wrong type (named with the line and the fix).
        DatasetValidationError: A dataset file has problems (every one listed).
        GraderValidationError: The grader is malformed.
    """
    from rlft import graders
    from rlft.datasets import Dataset

    file = Path(path)
    data, text = read_toml(file, what="job file")
    job = _JobFile(file, text)

    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        allowed = ", ".join(sorted(_KEYS))
        raise job.error(
            unknown[0], f"unknown key(s) {', '.join(unknown)}; a job file has {allowed}"
        )
    for required in ("train", "grader"):
        if required not in data:
            raise ConfigurationError(f"{file}: missing {required!r} (see docs/jobs.md)")
    for key, value in data.items():
        expected, example = _KEYS[key]
        if not isinstance(value, _TYPES[expected]):
            raise job.error(key, f"{key} is {toml_type(value)}, not {expected}; write {example}")
    for key in ("train", "validation"):
        if key in data and not data[key].strip():
            fix = "delete the line to train without one" if key == "validation" else "name it"
            raise job.error(key, f"{key} is an empty path; {fix}")
    for key in ("train", "validation", "grader"):
        if isinstance(data.get(key), str) and "\x00" in data[key]:
            raise job.error(key, f"{key} holds a NUL character (\\u0000); write a file path")
    labels = data.get("labels", {})
    for name, value in labels.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise job.error(
                "labels",
                f'labels.{name} is {toml_type(value)}; a label is text, e.g. {name} = "support"',
            )

    here = file.parent
    grader_value = data["grader"]
    grader = (
        graders.from_openai(grader_value)
        if isinstance(grader_value, dict)
        else graders.load(here / grader_value)
    )
    try:
        hyperparameters = Hyperparameters.model_validate(data.get("hyperparameters", {}))
    except pydantic.ValidationError as exc:
        raise job.error("hyperparameters", _problems("hyperparameters", exc)) from None
    validation = data.get("validation")
    try:
        return JobSpec(
            name=data.get("name"),
            model=data.get("model"),
            train=Dataset.from_jsonl(here / data["train"]),
            validation=Dataset.from_jsonl(here / validation) if validation else None,
            grader=grader,
            hyperparameters=hyperparameters,
            labels={str(k): str(v) for k, v in labels.items()},
            response_format=data.get("response_format"),
        )
    except pydantic.ValidationError as exc:
        first = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else ""
        raise job.error(first, _problems("", exc)) from None


def _problems(prefix: str, exc: pydantic.ValidationError) -> str:
    # Never echo the input: the message names the field and what was expected.
    return "; ".join(
        ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e["loc"])) + f": {e['msg']}"
        for e in exc.errors()
    )
