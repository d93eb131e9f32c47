"""LocalProvider: GRPO with TRL on this machine, each job trained by a detached worker process.

The job folders, status, events, pause/resume/cancel and repair are ``rlft.workers``'; this
module adds what is local: the TRL plan, the offline model checks, TRL rows and sampling. It
imports no torch, transformers or TRL: the worker (``_worker``) does, in its own process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from rlft.exceptions import CapabilityError, MissingDependencyError, ProviderError
from rlft.provider import Capabilities, DatasetRole
from rlft.workers import JobDir, JobFile, PlannedJob, WorkerProvider, utcnow
from rlft_providers.local._jobfile import LocalJobFile
from rlft_providers.local._plan import (
    TINY_MODEL,
    Plan,
    data_shape,
    default_python,
    grader_item_fields,
    is_tiny,
    plan_training,
    worker_command,
)
from rlft_providers.local._records import check_model, write_rows
from rlft_providers.local._settings import LocalSettings

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.provider import CreateJobRequest, JobSpec

__all__ = ["LocalProvider"]

RENDERING = "trl-v1"  # bump when the uploaded row format changes: content hashes stay valid


class LocalProvider(WorkerProvider):
    """The ``local`` backend: GRPO with TRL on this machine, one worker subprocess per job."""

    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        list_jobs=True,
        download_results=True,
        generate=True,  # a named model, sampled in a subprocess (see generate)
        poll_interval=0.5,
    )
    settings: LocalSettings
    default_model = TINY_MODEL

    def __init__(self, *, settings: LocalSettings | None = None) -> None:
        settings = settings if settings is not None else LocalSettings()
        super().__init__(settings=settings)
        if settings.python is None:  # the worker runs our interpreter: it needs the extra here
            for package in ("torch", "transformers", "trl"):
                if find_spec(package) is None:
                    raise MissingDependencyError("provider 'local'", package=package, extra="local")

    # --- checks ------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Map and range-check the hyperparameters and check the model exists offline.

        Raises:
            HyperparameterError: A setting is out of range or not a ``GRPOConfig`` field.
            MissingDependencyError: An option needs a package that is not installed.
            UsageError: The model folder does not exist, or the model is not available offline.
        """
        _plan(spec)
        if not is_tiny(spec.model):
            check_model(str(spec.model), offline=self.settings.offline)

    # --- datasets ----------------------------------------------------------------------------

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Copy the dataset, rendered as TRL rows, into ``<home>/datasets``; return its path.

        Files are named by content hash, so uploading the same data twice writes once.
        """
        path = self.home / "datasets" / f"{dataset.content_hash}.{RENDERING}.jsonl"
        return await self._run(write_rows, path, dataset)

    # --- jobs --------------------------------------------------------------------------------

    def plan_job(self, request: CreateJobRequest, *, job_id: str, folder: JobDir) -> PlannedJob:
        """The TRL plan for the job, with the worker command (plain or ``accelerate launch``)."""
        spec = request.spec
        plan = _plan(spec)
        python = self.settings.python or default_python()
        tiny = is_tiny(spec.model)
        job = LocalJobFile(
            id=job_id,
            created_at=utcnow(),
            idempotency_key=request.idempotency_key,
            model=spec.model,
            name=spec.name,
            labels=dict(spec.labels),
            train_file=request.training_file,
            validation_file=request.validation_file,
            grader=spec.grader.model_dump(mode="json"),
            hyperparameters=spec.hyperparameters.model_dump(mode="json"),
            grpo=plan.grpo,
            tiny=tiny,
            lora=plan.lora,
            command=worker_command(python, folder.root, plan.accelerate),
            device=self.settings.device,
            torch_threads=self.settings.torch_threads or (1 if tiny else None),
            offline=self.settings.offline,
            response_format=spec.response_format,
            grader_guard=plan.grader_guard.model_dump() if plan.grader_guard else None,
            settings_chosen=plan.summary(),
        )
        return PlannedJob(job=job, chosen=dict(plan.reasons))

    def worker_env(self, job: JobFile) -> dict[str, str]:
        """Offline flags (never wait on the network behind a firewall) and no hub telemetry."""
        env = {"HF_HUB_DISABLE_TELEMETRY": "1"}
        if self.settings.offline:
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        return env

    # --- inference ---------------------------------------------------------------------------

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample ``model`` once per prompt in a subprocess (torch never loads in the caller).

        Raises:
            CapabilityError: The tiny demonstration model: it is built from the training set when
                the job starts, so there is no base model to sample before.
            ProviderError: The sampler failed (its error output is in the message).
        """
        if is_tiny(model):
            raise CapabilityError(
                provider=self.name,
                operation="inference",
                reason="the tiny demonstration model is built from the training set when the job "
                "starts, so there is no base model to sample; name a model to preflight it",
            )
        assert model is not None
        check_model(model, offline=self.settings.offline)
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        if self.settings.offline:
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        request = {
            "model": model,
            "prompts": [[dict(m) for m in messages] for messages in prompts],
            "max_tokens": max_tokens or 64,
        }
        python = self.settings.python or default_python()
        result = await anyio.run_process(
            [python, "-m", "rlft_providers.local._sample"],
            input=json.dumps(request).encode(),
            env=env,
            check=False,
        )
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise ProviderError(
                f"sampling {model!r} failed (exit {result.returncode}): " + " | ".join(tail),
                provider=self.name,
            )
        answers: list[str] = json.loads(result.stdout)
        return answers


def _plan(spec: JobSpec) -> Plan:
    """The training plan, with the tiny model's settings sized from the training rows."""
    data = None
    if is_tiny(spec.model):
        fields = grader_item_fields(spec.grader.model_dump(mode="json"))
        data = data_shape((e.item for e in spec.train), rows=len(spec.train), fields=fields)
    return plan_training(
        spec.hyperparameters,
        model=spec.model,
        train_rows=len(spec.train),
        has_validation=spec.validation is not None,
        data=data,
    )
