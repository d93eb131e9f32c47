"""Client: configuration -> one provider instance, and the jobs/graders namespaces over it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from rlft._config import Config, build_settings, load_config
from rlft._job import Job
from rlft._models import Capabilities, Hyperparameters
from rlft._plugins import PluginHost, PluginInfo
from rlft.exceptions import CapabilityError, DatasetValidationError, UsageError
from rlft.provider import DatasetRole, Provider, ProviderSettings, ProviderSpec

if TYPE_CHECKING:
    from rlft._spec import JobSpec
    from rlft.datasets import Dataset
    from rlft.graders import Grader

__all__ = ["Client"]

logger = logging.getLogger("rlft")


class Client:
    """The way in: picks a provider from configuration and runs jobs on it.

    Use it as an async context manager so connections close::

        async with rlft.Client() as client:            # provider from rlft.toml / RLFT_PROVIDER
            job = await client.jobs.create(train=train, validation=valid, grader=grader)

    Args:
        provider: A provider id; beats ``RLFT_PROVIDER`` and ``rlft.toml``. Default ``"local"``.
        profile: A profile of ``rlft.toml``; beats ``RLFT_PROFILE``.
        settings: Provider settings (a dict of fields, or the settings object itself); beat env
            and file values.
        plugins: Extra plugin objects to register (tests, notebooks).
        autoload: Scan installed ``rlft`` entry points; ``None`` reads
            ``RLFT_DISABLE_PLUGIN_AUTOLOAD`` when plugins load.
        cwd: Where to look for ``rlft.toml`` (default: the current directory).
    """

    def __init__(
        self,
        *,
        provider: str | None = None,
        profile: str | None = None,
        settings: Mapping[str, Any] | ProviderSettings | None = None,
        plugins: Iterable[object] = (),
        autoload: bool | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self._requested_provider = provider
        self._profile = profile
        self._settings_overrides = settings
        self._cwd = Path(cwd) if cwd is not None else None
        self._host = PluginHost(plugins=plugins, autoload=autoload)
        self._config: Config | None = None
        self._provider: Provider | None = None
        self.jobs = JobsNamespace(self)
        self.graders = GradersNamespace(self)
        self.datasets = DatasetsNamespace(self)

    def __repr__(self) -> str:
        name = self._provider.name if self._provider else self._requested_provider or "<config>"
        return f"<rlft.Client provider={name!r}>"

    @property
    def config(self) -> Config:
        """The resolved configuration (read on first use)."""
        if self._config is None:
            self._config = load_config(
                cwd=self._cwd, provider=self._requested_provider, profile=self._profile
            )
        return self._config

    @property
    def provider_name(self) -> str:
        """The provider id this client talks to."""
        return self.config.provider

    @property
    def provider(self) -> Provider:
        """The provider instance, built on first use (imports its SDK then)."""
        if self._provider is None:
            spec = self._host.provider_spec(self.provider_name)
            cls = spec.load()
            settings = build_settings(spec, self.config, overrides=self._settings_overrides)
            self._provider = cls(settings=settings)
        return self._provider

    @property
    def capabilities(self) -> Capabilities:
        """What the configured provider can do."""
        return self.provider.capabilities

    def provider_specs(self) -> list[ProviderSpec]:
        """Every provider the loaded plugins registered."""
        return list(self._host.registry)

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins, their distributions and the providers they registered."""
        return self._host.plugins()

    async def aclose(self) -> None:
        """Close the provider's connections. Idempotent."""
        if self._provider is not None:
            await self._provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class DatasetsNamespace:
    """Dataset staging: validate, then upload once per content hash."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._uploads: dict[tuple[str, str], str] = {}

    async def upload(self, dataset: Dataset, *, role: DatasetRole = "train") -> str:
        """Upload a dataset unless this client already uploaded the same content; return its id."""
        provider = self._client.provider
        key = (provider.name, dataset.content_hash)
        if key not in self._uploads:
            self._uploads[key] = await provider.upload_dataset(dataset, role=role)
        else:
            logger.debug("dataset %s already uploaded as %s", key[1][:12], self._uploads[key])
        return self._uploads[key]


class GradersNamespace:
    """Graders on the backend: validate and run them remotely where the backend can."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def compile(self, grader: Grader) -> Any:
        """Compile a grader for the configured provider (raises before anything is sent)."""
        from rlft.graders import compile as compile_grader

        return compile_grader(grader, self._client.capabilities.grader_target)

    async def validate(self, grader: Grader) -> None:
        """Ask the backend whether it accepts the grader; raises a ``ProviderAPIError`` if not."""
        provider = self._client.provider
        _require(provider, "remote_graders", "remote grader validation")
        await provider.validate_grader(self.compile(grader))

    async def run(
        self, grader: Grader, *, sample: str, item: Mapping[str, Any] | None = None
    ) -> Any:
        """Score one sample with the backend's grader service."""
        provider = self._client.provider
        _require(provider, "remote_graders", "remote grader runs")
        return await provider.run_grader(self.compile(grader), sample=sample, item=item or {})


class JobsNamespace:
    """Create, find and control jobs on the configured provider."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def create(
        self,
        *,
        train: Dataset | None = None,
        grader: Grader | None = None,
        model: str | None = None,
        validation: Dataset | None = None,
        hyperparameters: Hyperparameters | Mapping[str, Any] | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        response_format: Mapping[str, Any] | None = None,
        spec: JobSpec | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Check everything, upload the data, and create the job.

        Every check runs before the first upload: the provider's hyperparameter ranges, every
        dataset rule of the backend, every ``item.*`` field the grader reads, and whether the
        grader compiles for the backend.

        Args:
            train: The training set.
            grader: The grader.
            model: The base model (``None``: the provider's default, if it has one).
            validation: The validation set (some backends require one).
            hyperparameters: ``rlft.Hyperparameters`` or a dict of its fields.
            name: A human name (a model suffix where the backend has one).
            labels: Free labels stored with the job.
            response_format: A JSON-schema response format for structured outputs.
            spec: A ready ``JobSpec`` instead of the keywords above.
            idempotency_key: Deduplicates creates. Defaults to the spec's content hash, so a
                create retried after a crash finds the first job instead of paying twice; pass
                a fresh value to deliberately run an identical job again.

        Raises:
            DatasetValidationError: The data breaks a rule; ``.report`` lists every problem.
            GraderNotSupportedError: The backend cannot run the grader.
            HyperparameterError: A setting is out of the backend's range.
        """
        from rlft._spec import CreateJobRequest, JobSpec

        if spec is None:
            if train is None or grader is None:
                raise UsageError("jobs.create needs train= and grader= (or spec=)")
            params = (
                hyperparameters
                if isinstance(hyperparameters, Hyperparameters)
                else Hyperparameters.model_validate(dict(hyperparameters or {}))
            )
            spec = JobSpec(
                model=model,
                train=train,
                validation=validation,
                grader=grader,
                hyperparameters=params,
                name=name,
                labels=dict(labels or {}),
                response_format=dict(response_format) if response_format else None,
            )
        provider = self._client.provider
        caps = provider.capabilities
        if caps.requires_validation_set and spec.validation is None:
            raise UsageError(
                f"provider {provider.name!r} requires a validation set: pass validation= "
                "(train.split(validation=0.1, seed=...) makes one)"
            )
        provider.check_spec(spec)
        _check_datasets(spec, caps.dataset_target)
        grader_payload = self._client.graders.compile(spec.grader)

        uploads = self._client.datasets
        training_file = await uploads.upload(spec.train, role="train")
        validation_file = (
            await uploads.upload(spec.validation, role="validation") if spec.validation else None
        )
        request = CreateJobRequest(
            spec=spec,
            grader_payload=grader_payload,
            training_file=training_file,
            validation_file=validation_file,
            idempotency_key=idempotency_key or spec.content_hash()[:32],
        )
        record = await provider.create_job(request)
        logger.info("created job %s on %s", record.id, provider.name)
        return Job(provider=provider, record=record)

    async def get(self, job_id: str) -> Job:
        """A handle on an existing job, refreshed."""
        provider = self._client.provider
        return Job(provider=provider, record=await provider.get_job(job_id))

    async def list(self, *, limit: int = 100) -> list[Job]:
        """Recent jobs on the provider."""
        provider = self._client.provider
        _require(provider, "list_jobs", "list_jobs")
        records = await provider.list_jobs(limit=limit)
        return [Job(provider=provider, record=record) for record in records]

    async def wait(self, job: Job | str, *, timeout: float | None = None) -> Job:
        """Wait until a job is terminal (see ``Job.wait``)."""
        handle = job if isinstance(job, Job) else await self.get(job)
        return await handle.wait(timeout=timeout)

    async def cancel(self, job: Job | str) -> Job:
        """Cancel a job on the backend."""
        handle = job if isinstance(job, Job) else await self.get(job)
        return await handle.cancel()

    async def pause(self, job: Job | str) -> Job:
        """Pause a job (where the backend can)."""
        handle = job if isinstance(job, Job) else await self.get(job)
        return await handle.pause()

    async def resume(self, job: Job | str) -> Job:
        """Resume a paused job."""
        handle = job if isinstance(job, Job) else await self.get(job)
        return await handle.resume()


def _check_datasets(spec: JobSpec, target: str) -> None:
    sets: Sequence[tuple[str, Dataset | None]] = (
        ("training", spec.train),
        ("validation", spec.validation),
    )
    for label, dataset in sets:
        if dataset is None:
            continue
        report = dataset.validate(provider=target, grader=spec.grader)
        if report.errors:
            raise DatasetValidationError(
                f"the {label} set has {len(report.errors)} problem(s) for {target!r}:\n"
                f"{report.format()}",
                report=report,
            )


def _require(provider: Provider, capability: str, operation: str) -> None:
    if not getattr(provider.capabilities, capability):
        raise CapabilityError(provider=provider.name, operation=operation)
