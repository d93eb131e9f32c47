"""rlft: provider-neutral reinforcement fine-tuning.

Write a dataset and a grader once, test the grader locally, and run the same job on OpenAI,
Azure AI Foundry, AWS Bedrock or your own machine (TRL), switching by configuration.
"""

from rlft._client import Client
from rlft._job import Job
from rlft._jobfile import load_job_file
from rlft._manager import JobManager, JobUpdate
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
from rlft._preflight import PreflightReport, PreflightSample
from rlft._spec import JobSpec
from rlft._store import StoredJob
from rlft._version import __version__
from rlft.datasets import Dataset, Example
from rlft.hookspecs import hookimpl

__all__ = [
    "__version__",
    "Capabilities",
    "Checkpoint",
    "Client",
    "Dataset",
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
    "PreflightReport",
    "PreflightSample",
    "StepMetrics",
    "StoredJob",
]

# Reprs and docs say `rlft.Job`, not `rlft._job.Job`; classes of a public module keep its name.
for _name in __all__[1:]:
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith("rlft._"):
        _value.__module__ = "rlft"
del _name, _value
