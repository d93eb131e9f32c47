"""Client: configuration -> one provider instance, and the jobs/graders namespaces over it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio

from rlft._config import Config, build_settings, load_config
from rlft._job import Job
from rlft._models import Capabilities, Hyperparameters, JobStatus
from rlft._plugins import PluginHost, PluginInfo
from rlft.exceptions import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    DatasetValidationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UsageError,
)
from rlft.provider import DatasetRole, Provider, ProviderSettings, ProviderSpec

if TYPE_CHECKING:
    from rlft._models import JobRecord
    from rlft._preflight import PreflightReport
    from rlft._spec import CheckedSpec, CreateJobRequest, JobSpec
    from rlft._store import JobStore, StoredJob
    from rlft.datasets import Dataset
    from rlft.graders import Grader

__all__ = ["Client"]

logger = logging.getLogger("rlft")


class Client:
    """The way in: picks a provider from configuration and runs jobs on it.

    Use it as an async context manager so connections close:

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
        store: The job store: a path to its SQLite file, a ``JobStore``, ``None`` for the
            default (``rlft_home() / "jobs.db"``), or ``False`` to record nothing.
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
        store: str | Path | JobStore | Literal[False] | None = None,
    ) -> None:
        self._requested_provider = provider
        self._profile = profile
        self._settings_overrides = settings
        self._cwd = Path(cwd) if cwd is not None else None
        self._host = PluginHost(plugins=plugins, autoload=autoload)
        self._config: Config | None = None
        self._provider: Provider | None = None
        self._others: dict[tuple[str, str | None, str | None], Provider] = {}
        self._store_arg = store
        self._store: JobStore | None = None
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
            self._provider = self._build(self.provider_name, self.config, self._settings_overrides)
        return self._provider

    @property
    def store(self) -> JobStore | None:
        """The job store (opened on first use), or ``None`` when built with ``store=False``."""
        if self._store is None and self._store_arg is not False:
            from rlft._store import JobStore

            arg = self._store_arg
            self._store = arg if isinstance(arg, JobStore) else JobStore(path=arg)
        return self._store

    def provider_for(self, name: str | None = None) -> Provider:
        """The instance of provider ``name`` (default: the configured one), built on first use.

        Every provider shares this client's configuration file and profile; ``settings=``
        overrides apply to the configured provider only.
        """
        if name is None or name == self.provider_name:
            return self.provider
        key = (name, None, None)
        if key not in self._others:
            self._others[key] = self._build(name, self.config, None)
        return self._others[key]

    def _provider_for_job(self, row: StoredJob) -> Provider:
        """The provider a stored job lives on, configured as when it was created."""
        file = Path(row.config_file) if row.config_file else None
        same_file = file is None or file == self.config.file or not file.is_file()
        if same_file and row.profile in (None, self.config.profile):
            return self.provider_for(row.provider)
        key = (row.provider, row.config_file if file and file.is_file() else None, row.profile)
        if key not in self._others:
            config = load_config(
                cwd=file.parent if file is not None and file.is_file() else self._cwd,
                provider=row.provider,
                profile=row.profile,
            )
            self._others[key] = self._build(row.provider, config, None)
        return self._others[key]

    def _build(
        self,
        name: str,
        config: Config,
        overrides: Mapping[str, Any] | ProviderSettings | None,
    ) -> Provider:
        spec = self._host.provider_spec(name)
        cls = spec.load()
        return cls(settings=build_settings(spec, config, overrides=overrides))

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
        """Close the providers' connections and the job store. Idempotent."""
        if self._provider is not None:
            await self._provider.aclose()
        for other in self._others.values():
            await other.aclose()
        if self._store is not None:
            await self._store.aclose()

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
    """Dataset staging: upload once per content hash, remembered across processes."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._uploads: dict[tuple[str, str, str], str] = {}
        self._locks: dict[tuple[str, str, str], anyio.Lock] = {}
        self._remembered: set[tuple[str, str, str]] = set()

    async def upload(
        self, dataset: Dataset, *, role: DatasetRole = "train", provider: str | None = None
    ) -> str:
        """Upload a dataset unless the same content was uploaded before; return its file id.

        Uploads are remembered in the job store by content hash and provider endpoint, so
        another process (or tomorrow's run) reuses the file instead of uploading it again.

        Args:
            dataset: The dataset.
            role: ``"train"`` or ``"validation"``.
            provider: A provider id (default: the configured one).
        """
        return await self._upload(self._client.provider_for(provider), dataset, role=role)

    async def _upload(self, provider: Provider, dataset: Dataset, *, role: DatasetRole) -> str:
        key = (provider.name, scope_of(provider), dataset.content_hash)
        # One upload per content even when a sweep creates many jobs from one set at once.
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if key in self._uploads:
                logger.debug("dataset %s already uploaded as %s", key[2][:12], self._uploads[key])
                return self._uploads[key]
            store = self._client.store
            name, scope, content_hash = key
            if store is not None:
                known = await store.upload_id(provider=name, scope=scope, content_hash=content_hash)
                if known is not None:
                    logger.debug("dataset %s was uploaded before as %s", content_hash[:12], known)
                    self._uploads[key] = known
                    self._remembered.add(key)
                    return known
            file_id = await provider.upload_dataset(dataset, role=role)
            self._uploads[key] = file_id
            if store is not None:
                await store.remember_upload(
                    provider=name, scope=scope, content_hash=content_hash, file_id=file_id
                )
            return file_id

    async def _forget_remembered(self, provider: Provider, datasets: Iterable[Dataset]) -> None:
        """Forget uploads reused from the store (the backend may have deleted the files)."""
        store = self._client.store
        for dataset in datasets:
            key = (provider.name, scope_of(provider), dataset.content_hash)
            if key in self._remembered:
                self._uploads.pop(key, None)
                self._remembered.discard(key)
                if store is not None:
                    await store.forget_upload(provider=key[0], scope=key[1], content_hash=key[2])


class GradersNamespace:
    """Graders on the backend: validate and run them remotely where the backend can."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def compile(self, grader: Grader, *, provider: str | None = None) -> Any:
        """Compile a grader for a provider (default: the configured one); raises before sending."""
        return _compile(grader, self._client.provider_for(provider))

    async def validate(self, grader: Grader) -> None:
        """Ask the backend whether it accepts the grader; raises a ``ProviderAPIError`` if not."""
        provider = self._client.provider
        _require(provider, "validate_grader", "remote grader validation")
        await provider.validate_grader(self.compile(grader))

    async def run(
        self, grader: Grader, *, sample: str, item: Mapping[str, Any] | None = None
    ) -> Any:
        """Score one sample with the backend's grader service."""
        provider = self._client.provider
        _require(provider, "run_grader", "remote grader runs")
        return await provider.run_grader(self.compile(grader), sample=sample, item=item or {})


class JobsNamespace:
    """Create, find and control jobs; every job is recorded in the job store."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def check(self, spec: JobSpec | CheckedSpec, *, provider: str | None = None) -> CheckedSpec:
        """Run every check ``create`` runs, without uploading or creating anything.

        Returns a ``CheckedSpec``: pass it to ``create(spec=...)`` or ``JobManager.submit`` and
        the checks (the dataset's validation above all) do not run a second time.

        Raises:
            DatasetValidationError: The data breaks a rule; ``.report`` lists every problem.
            GraderNotSupportedError: The backend cannot run the grader.
            HyperparameterError: A setting is out of the backend's range.
        """
        return _checked(spec, self._client.provider_for(provider))

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
        spec: JobSpec | CheckedSpec | None = None,
        idempotency_key: str | None = None,
        provider: str | None = None,
    ) -> Job:
        """Check everything, upload the data, and create the job.

        Every check runs before the first upload, once: the provider's hyperparameter ranges,
        every dataset rule of the backend, every ``item.*`` field the grader reads, and whether
        the backend supports the grader. The grader is compiled only if the backend reads the
        compiled payload. The job store records the create before the remote call, so a create
        interrupted by a crash is found again when it is retried, and reserves its key, so two
        processes creating the same job at once make one job, even on a backend that ignores
        idempotency keys.

        Args:
            train: The training set.
            grader: The grader.
            model: The base model (``None``: the provider's default, if it has one).
            validation: The validation set (some backends require one).
            hyperparameters: ``rlft.Hyperparameters`` or a dict of its fields.
            name: A human name (a model suffix where the backend has one).
            labels: Free labels stored with the job.
            response_format: A JSON-schema response format for structured outputs.
            spec: A ready ``JobSpec`` instead of the keywords above, or the ``CheckedSpec``
                ``check`` returned (then the checks are not run again).
            idempotency_key: Deduplicates creates. Defaults to the spec's content hash, so a
                create retried after a crash finds the first job instead of paying twice; pass
                a fresh value to deliberately run an identical job again.
            provider: Run on this provider id instead of the configured one (sweeps).

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
        target = self._client.provider_for(provider)
        job_spec = _checked(spec, target).spec

        uploads = self._client.datasets
        training_file = await uploads._upload(target, job_spec.train, role="train")
        validation_file = (
            await uploads._upload(target, job_spec.validation, role="validation")
            if job_spec.validation
            else None
        )
        key = idempotency_key or job_spec.content_hash()[:32]
        request = CreateJobRequest(
            spec=job_spec,
            training_file=training_file,
            validation_file=validation_file,
            idempotency_key=key,
            # Compiled by whoever reads request.grader_payload, once; never by a backend that
            # grades elsewhere (the local runner compiles in its worker).
            compile_grader=lambda: _compile(job_spec.grader, target),
        )
        store = self._client.store
        if store is None:
            record = await self._remote_create(target, request, None)
            logger.info("created job %s on %s", record.id, target.name)
            return Job(provider=target, record=record)
        scope = scope_of(target)
        # The reservation: one process at a time creates a given key; a second one waits here,
        # then finds the first one's job below. A dead holder's reservation is released by the OS.
        async with store.reserve(provider=target.name, scope=scope, idempotency_key=key):
            earlier = await store.find_create(
                provider=target.name, scope=scope, idempotency_key=key
            )
            if earlier is not None and not earlier.creating:
                found = await self._existing(target, earlier)
                if found is not None:
                    return found
            elif earlier is not None and target.capabilities.list_jobs:
                # Left unconfirmed by an earlier attempt (a crash, a timeout): it may have landed.
                settled = await self._reconcile_one(earlier)
                if settled is not None:
                    return self._handle(settled)
            config = self._client.config
            row = await store.begin_create(
                provider=target.name,
                scope=scope,
                idempotency_key=key,
                spec_hash=job_spec.content_hash(),
                name=job_spec.name,
                labels=job_spec.labels,
                model=job_spec.model,
                profile=config.profile,
                config_file=str(config.file) if config.file else None,
            )
            record = await self._remote_create(target, request, row)
            # Shielded: a create that landed must be recorded even if the caller gives up now.
            with anyio.CancelScope(shield=True):
                local_id = (await store.finish_create(row.local_id, record)).local_id
        logger.info("created job %s (%s) on %s", record.id, local_id, target.name)
        return Job(provider=target, record=record, local_id=local_id, store=store)

    async def _existing(self, target: Provider, row: StoredJob) -> Job | None:
        """The job an earlier create of the same key made, refreshed; ``None`` if it is gone."""
        job = Job(provider=target, record=row.to_record(), local_id=row.local_id)
        try:
            await job.refresh()
        except NotFoundError:
            return None  # the backend forgot it (deleted, or an in-memory fake): create anew
        store = self._client.store
        if store is not None:
            job.attach_to(store, row.local_id)
            await store.update(row.local_id, job.record)
        logger.info("job %s (%s) was created before with the same key", job.id, row.local_id)
        return job

    async def _remote_create(
        self, target: Provider, request: CreateJobRequest, row: StoredJob | None
    ) -> JobRecord:
        """The remote create; a refusal that proves nothing was created forgets the attempt."""
        try:
            return await target.create_job(request)
        except BaseException as exc:
            if _never_created(exc):
                spec = request.spec
                datasets = [d for d in (spec.train, spec.validation) if d is not None]
                store = self._client.store
                with anyio.CancelScope(shield=True):
                    await self._client.datasets._forget_remembered(target, datasets)
                    if store is not None and row is not None and row.creating:
                        await store.abandon_create(row.local_id)
            # Otherwise (a timeout, a 5xx, a crash) the row stays "creating": the same create
            # run again carries the same key, and the backend returns the job if it landed.
            raise

    async def get(self, job_id: str) -> Job:
        """Reattach to a job by its local id or backend id, refreshed from its backend.

        A job in the job store is reached on the provider it was created on, whichever provider
        this client is configured for. An id the store doesn't know is looked up on the
        configured provider and recorded.
        """
        store = self._client.store
        row = await store.find(job_id) if store is not None else None
        if row is not None:
            if row.creating:
                found = await self._reconcile_one(row)
                if found is None:
                    raise UsageError(
                        f"job {row.local_id} on {row.provider} was being created when its "
                        "process stopped, and the backend has no job for it yet; run the same "
                        "job again (the same spec reuses this record) to finish the create"
                    )
                row = found
            return await self._handle(row).refresh()
        if store is not None and job_id.startswith("rlft-"):
            raise UsageError(
                f"no job {job_id!r} in the job store {store.path}; `rlft jobs list` shows the "
                "recorded jobs (set RLFT_HOME to the store that has it)"
            )
        provider = self._client.provider
        record = await provider.get_job(job_id)
        local_id = None
        if store is not None:
            config = self._client.config
            adopted = await store.adopt(
                record,
                scope=scope_of(provider),
                profile=config.profile,
                config_file=str(config.file) if config.file else None,
            )
            local_id = adopted.local_id
        return Job(provider=provider, record=record, local_id=local_id, store=store)

    async def reconcile(self) -> list[StoredJob]:
        """Settle creates a crashed process left unconfirmed; return those still unconfirmed.

        Each unconfirmed create is looked for on its backend (a job carrying its idempotency
        key in the backend's listing). One not found was most likely never created: running
        the same job again finishes it without risk of a second paid job.
        """
        store = self._client.store
        if store is None:
            return []
        pending = await store.jobs(status="creating")
        left = []
        for row in pending:
            if await self._reconcile_one(row) is None:
                left.append(row)
        return left

    async def _reconcile_one(self, row: StoredJob) -> StoredJob | None:
        store = self._client.store
        provider = self._client._provider_for_job(row)
        if store is None or not provider.capabilities.list_jobs or not row.idempotency_key:
            return None
        for record in await provider.list_jobs(limit=100):
            if row.idempotency_key in record.metadata.values():
                return await store.finish_create(row.local_id, record)
        return None

    def _handle(self, row: StoredJob) -> Job:
        """A handle on a stored job; its provider is built when it first talks to it."""
        return Job(
            provider=lambda: self._client._provider_for_job(row),
            record=row.to_record(),
            local_id=row.local_id,
            store=self._client.store,
        )

    async def preflight(
        self,
        spec: JobSpec,
        *,
        samples: int = 8,
        provider: str | None = None,
        max_tokens: int | None = None,
        seed: int = 0,
    ) -> PreflightReport:
        """Sample the base model on a few training prompts and grade them: is there signal?

        See ``rlft.PreflightReport`` for the warnings (mean reward near 0, near 1, no
        variance). Needs the ``generate`` capability.

        Args:
            spec: The job to check.
            samples: How many training prompts to sample.
            provider: A provider id (default: the configured one).
            max_tokens: Longest completion (default: the job's ``max_completion_tokens``).
            seed: Which prompts are picked.
        """
        from rlft._preflight import run_preflight

        return await run_preflight(
            self._client.provider_for(provider),
            spec,
            samples=samples,
            max_tokens=max_tokens,
            seed=seed,
        )

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

    async def list(
        self,
        *,
        provider: str | None = None,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        labels: Mapping[str, str] | None = None,
        active: bool | None = None,
        settled: bool | None = None,
        limit: int | None = 100,
        remote: bool = False,
    ) -> list[Job]:
        """Jobs from the job store, across every provider, newest first. No network.

        Each job's snapshot is the last one saved; ``await job.refresh()`` asks its backend.

        Args:
            provider: Only this provider's jobs.
            status: Only jobs in these statuses.
            labels: Only jobs carrying all of these labels.
            active: ``True`` for jobs not yet terminal, ``False`` for finished ones.
            settled: ``False`` for jobs a watcher still has to read: not terminal, or terminal
                with their last events not yet stored (a watcher killed in between).
            limit: At most this many.
            remote: List the backend's recent jobs instead (one provider: ``provider`` or the
                configured one), including jobs rlft did not create. Needs ``list_jobs``.
        """
        store = self._client.store
        if remote or store is None:
            target = self._client.provider_for(provider)
            _require(target, "list_jobs", "list_jobs")
            records = await target.list_jobs(limit=limit or 100)
            return [Job(provider=target, record=record) for record in records]
        statuses = None
        if status is not None:
            wanted = [status] if isinstance(status, str | JobStatus) else list(status)
            statuses = [str(JobStatus(s).value) for s in wanted]
        rows = await store.jobs(
            provider=provider,
            status=statuses,
            labels=labels,
            active=active,
            settled=settled,
            limit=None,
        )
        jobs = [self._handle(row) for row in rows if not row.creating]
        return jobs[:limit] if limit is not None else jobs


def scope_of(provider: Provider) -> str:
    """``rlft._store.scope_of``, imported on first use (``import rlft`` loads no SQLite)."""
    from rlft._store import scope_of as store_scope

    return store_scope(provider)


def _compile(grader: Grader, provider: Provider) -> Any:
    from rlft.graders import compile as compile_grader

    return compile_grader(grader, provider.name)


def _checked(spec: JobSpec | CheckedSpec, provider: Provider) -> CheckedSpec:
    """Every check before an upload, once per spec and provider endpoint."""
    from rlft._spec import CheckedSpec

    scope = scope_of(provider)
    if isinstance(spec, CheckedSpec):
        if (spec.provider, spec.scope) == (provider.name, scope):
            return spec  # already checked for this endpoint: the fact travels with it
        spec = spec.spec
    caps = provider.capabilities
    if caps.requires_validation_set and spec.validation is None:
        raise UsageError(
            f"provider {provider.name!r} requires a validation set: pass validation= "
            "(train.split(validation=0.1, seed=...) makes one)"
        )
    provider.check_spec(spec)
    _check_datasets(spec, provider.name)
    _check_grader(spec.grader, provider)
    return CheckedSpec(spec=spec, provider=provider.name, scope=scope)


def _check_grader(grader: Grader, provider: Provider) -> None:
    """Refuse a grader the backend can't run, without compiling it (the user of it compiles).

    The same support check ``compile`` starts with, so nothing it would refuse gets uploaded.
    """
    from rlft.graders._compile import check_support

    check_support(grader, provider.name)


# Refusals that prove nothing was created: safe to forget the "creating" record.
_REFUSALS = (
    UsageError,
    BadRequestError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    RateLimitError,
)


def _never_created(exc: BaseException) -> bool:
    return isinstance(exc, _REFUSALS)


def _check_datasets(spec: JobSpec, target: str) -> None:
    # One call: the rules see both sets together (Azure needs a validation set; Bedrock's row
    # minimum applies to the training set only).
    report = spec.train.validate(provider=target, grader=spec.grader, validation=spec.validation)
    if report.errors:
        raise DatasetValidationError(
            f"the data has {len(report.errors)} problem(s) for {target!r}:\n{report.format()}",
            report=report,
        )


def _require(provider: Provider, capability: str, operation: str) -> None:
    if not getattr(provider.capabilities, capability):
        raise CapabilityError(provider=provider.name, operation=operation)
