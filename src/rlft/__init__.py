"""rlft: provider-neutral reinforcement fine-tuning.

Write a dataset and a grader once, test the grader locally, and run the same job on OpenAI,
Azure AI Foundry, AWS Bedrock or your own machine (TRL), switching by configuration.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from rlft._client import Client
from rlft._job import Job
from rlft._jobfile import load_job_file
from rlft._models import (
    Capabilities,
    Checkpoint,
    Hyperparameters,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    StepMetrics,
)
from rlft._spec import JobSpec
from rlft._version import __version__
from rlft.datasets import Dataset, Example
from rlft.hookspecs import hookimpl

if _TYPE_CHECKING:
    from rlft._eval import EvalReport, ModelScore, evaluate
    from rlft._manager import JobManager, JobUpdate
    from rlft._preflight import PreflightReport, PreflightSample
    from rlft._store import StoredJob

# Loaded on first access (PEP 562): the job store pulls in sqlite3, the manager the guards.
_LAZY = {
    "EvalReport": "rlft._eval",
    "evaluate": "rlft._eval",
    "ModelScore": "rlft._eval",
    "JobManager": "rlft._manager",
    "JobUpdate": "rlft._manager",
    "PreflightReport": "rlft._preflight",
    "PreflightSample": "rlft._preflight",
    "StoredJob": "rlft._store",
}

__all__ = [
    "__version__",
    "Capabilities",
    "Checkpoint",
    "Client",
    "Dataset",
    "EvalReport",
    "evaluate",
    "Example",
    "hookimpl",
    "Hyperparameters",
    "Job",
    "JobErrorInfo",
    "JobEvent",
    "JobManager",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "JobUpdate",
    "load_job_file",
    "ModelScore",
    "PreflightReport",
    "PreflightSample",
    "StepMetrics",
    "StoredJob",
]


def _public(value: _Any) -> _Any:
    # Reprs and docs say `rlft.Job`, not `rlft._job.Job`; classes of public modules keep theirs.
    if isinstance(value, type) and value.__module__.startswith("rlft._"):
        value.__module__ = "rlft"
    return value


for _name in __all__[1:]:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        value = _public(getattr(importlib.import_module(_LAZY[name]), name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rlft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
