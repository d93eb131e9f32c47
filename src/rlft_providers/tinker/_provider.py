"""TinkerProvider: rlft's GRPO loop and graders on a Tinker-protocol training service.

A thin ``rlft.workers.WorkerProvider``: jobs are folders on this machine, each run by a
detached worker (``python -m rlft_providers.tinker._worker <folder>``) that drives the remote
service, so status, events, checkpoints, pause, resume, cancel and death detection are the
shared machinery. This module supplies the plan (range-checked before any remote call), the
model check against the service, the worker's environment (the key, never a file) and
``generate``. It imports no torch; the ``tinker`` SDK loads in a thread when first needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rlft.exceptions import MissingDependencyError, ProviderError, UsageError
from rlft.provider import Capabilities, DatasetRole, register_secret
from rlft.workers import JobDir, PlannedJob, WorkerProvider, atomic_write, utcnow
from rlft_providers.tinker._job import TinkerJobFile
from rlft_providers.tinker._plan import TinkerPlan, plan_training
from rlft_providers.tinker._settings import TinkerSettings

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.provider import CreateJobRequest, JobSpec

__all__ = ["TinkerProvider"]

WORKER_MODULE = "rlft_providers.tinker._worker"
RENDERING = "trl-v1"  # the rows the worker reads: {"prompt": messages, **item}


class TinkerProvider(WorkerProvider):
    """The ``tinker`` backend: the loop and the graders here, training and sampling there."""

    name: ClassVar[str] = "tinker"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pause_job=True,
        resume_job=True,
        cancel_job=True,
        list_events=True,
        list_checkpoints=True,
        list_jobs=True,
        download_results=True,
        generate=True,  # a base model name or a checkpoint's tinker:// path
        poll_interval=1.0,
    )
    settings: TinkerSettings
    # An update whose answer was lost may or may not be applied: a resumed worker starts from the
    # state saved on the service, so the update in flight is discarded and none runs twice.
    resumable_errors = WorkerProvider.resumable_errors | {"connection_lost"}

    def __init__(self, *, settings: TinkerSettings | None = None) -> None:
        settings = settings if settings is not None else TinkerSettings()
        super().__init__(settings=settings)
        if settings.python is None and find_spec("tinker") is None:
            raise MissingDependencyError("provider 'tinker'", package="tinker", extra="tinker")
        if settings.api_key is not None:
            register_secret(settings.api_key.get_secret_value())  # masked everywhere rlft writes

    # --- checks ------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        """Range-check the hyperparameters and require a model; no remote call.

        Raises:
            HyperparameterError: A value is out of range or not supported by this backend.
            UsageError: No model is named.
        """
        _plan(spec)

    # --- datasets ----------------------------------------------------------------------------

    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Copy the dataset, as ``{"prompt": messages, **item}`` rows, into ``<home>/datasets``.

        The rows stay on this machine: the worker renders prompts into tokens itself. Files are
        named by content hash, so the same data is written once.
        """
        path = self.home / "datasets" / f"{dataset.content_hash}.{RENDERING}.jsonl"
        return await self._run(_write_rows, path, dataset)

    # --- jobs --------------------------------------------------------------------------------

    def worker_env(self, job: Any) -> dict[str, str]:
        """The key reaches the worker by environment only (never ``job.json``)."""
        env: dict[str, str] = {}
        if self.settings.api_key is not None:
            env["TINKER_API_KEY"] = self.settings.api_key.get_secret_value()
        if self.settings.tokenizer is not None:  # everything the worker loads is local
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        return env

    def plan_job(self, request: CreateJobRequest, *, job_id: str, folder: JobDir) -> PlannedJob:
        """``job.json`` for a new job, after checking the service offers the model.

        Raises:
            UsageError: The service does not offer the model for training (the message lists
                those it does), or it cannot be reached.
        """
        spec = request.spec
        plan = _plan(spec)
        self._check_model(str(spec.model))
        python = self.settings.python or sys.executable
        guard = plan.grader_guard
        job = TinkerJobFile(
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
            command=[python, "-m", WORKER_MODULE, str(folder.root)],
            response_format=spec.response_format,
            grader_guard={"threshold": guard["threshold"], "steps": int(guard["steps"])}
            if guard
            else None,
            settings_chosen=plan.summary(),
            base_url=self.settings.base_url,
            tokenizer=self.settings.tokenizer,
            plan=plan,
            step_retries=self.settings.step_retries,
            retry_backoff=self.settings.retry_backoff,
        )
        chosen = {reason.split("=", 1)[0]: reason for reason in plan.reasons}
        return PlannedJob(job=job, chosen=chosen)

    def _check_model(self, model: str) -> None:
        from rlft_providers.tinker._service import (
            ModelNotOffered,
            check_model,
            is_connection_error,
        )

        try:
            check_model(
                model,
                base_url=self.settings.base_url,
                api_key=self._key(),
                timeout=self.settings.connect_timeout,
            )
        except ModelNotOffered as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:
            if is_connection_error(exc):
                raise UsageError(
                    f"could not reach the Tinker service at {self._where()} to check model "
                    f"{model!r} ({type(exc).__name__} after {self.settings.connect_timeout:g}s); "
                    "check [tinker] base_url "
                    "(RLFT_TINKER_BASE_URL) and the network"
                ) from None
            raise ProviderError(
                f"the Tinker service refused the model check: {exc}; check TINKER_API_KEY",
                provider=self.name,
            ) from None

    def _key(self) -> str | None:
        return self.settings.api_key.get_secret_value() if self.settings.api_key else None

    def _where(self) -> str:
        return self.settings.base_url or "the SDK's default URL"

    # --- inference ---------------------------------------------------------------------------

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample a base model (its name) or a checkpoint (its ``tinker://`` path) once per prompt.

        Raises:
            UsageError: No model named.
            ProviderError: The service refused or could not be reached.
        """
        if not model:
            raise UsageError("name a model to sample on the Tinker backend")
        messages = [[dict(m) for m in prompt] for prompt in prompts]
        return await self._run(self._generate, model, messages, max_tokens or 64)

    def _generate(
        self, model: str, prompts: list[list[dict[str, Any]]], max_tokens: int
    ) -> list[str]:
        import tinker

        service = tinker.ServiceClient(base_url=self.settings.base_url, api_key=self._key())
        try:
            if model.startswith("tinker://"):
                sampler = service.create_sampling_client(model_path=model).result()
            else:
                sampler = service.create_sampling_client(base_model=model).result()
            tokenizer = _tokenizer(self.settings.tokenizer, sampler)
            params = tinker.SamplingParams(max_tokens=max_tokens, temperature=0.0)
            futures = []
            for messages in prompts:
                text = tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
                tokens = tokenizer.encode(text, add_special_tokens=False)
                futures.append(sampler.sample(tinker.ModelInput.from_ints(tokens), 1, params))
            return [
                tokenizer.decode(f.result().sequences[0].tokens, skip_special_tokens=True).strip()
                for f in futures
            ]
        except tinker.TinkerError as exc:
            raise ProviderError(
                f"sampling {model!r} on the Tinker service failed: {exc}", provider=self.name
            ) from None
        finally:
            service.close("success")


def _tokenizer(folder: str | None, sampler: Any) -> Any:
    if folder:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    return sampler.get_tokenizer()


def _plan(spec: JobSpec) -> TinkerPlan:
    if not spec.model:
        raise UsageError(
            "the Tinker backend needs a model: the service's base model name (e.g. "
            '"Qwen/Qwen3-4B-Instruct-2507"), or a model path on a self-hosted server'
        )
    return plan_training(
        spec.hyperparameters, train_rows=len(spec.train), has_validation=spec.validation is not None
    )


def _write_rows(path: Path, dataset: Dataset) -> str:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        from rlft.datasets import to_trl_rows

        lines = [json.dumps(row, ensure_ascii=False) for row in to_trl_rows(dataset)]
        atomic_write(path, "\n".join(lines) + "\n")
    return str(path)
