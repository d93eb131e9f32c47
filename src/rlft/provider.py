"""The provider contract: what a backend implements, what it declares, and how it registers.

A backend is a ``Provider`` subclass plus a ``ProviderSpec`` registered from the
``rlft_register_providers`` hook. The spec carries the backend's facts as plain data, so the core
can validate a dataset, compile a grader or price a job without importing the backend's SDK:

    import rlft
    from rlft.provider import DatasetRules, GraderFacts, JobStatus, ProviderRegistry, ProviderSpec

    @rlft.hookimpl
    def rlft_register_providers(registry: ProviderRegistry) -> None:
        registry.add(ProviderSpec(
            name="acme", settings=AcmeSettings, requires=("httpx",),
            factory="rlft_acme._provider:AcmeProvider",   # imported on first use only
            statuses={"warming": JobStatus.PENDING, "done": JobStatus.SUCCEEDED},
            dataset=DatasetRules(label="Acme RFT", roles=frozenset({"user"})),
            graders=GraderFacts(format="openai"),
        ))

Each ``Provider`` method does one remote operation and translates the answer to neutral models;
polling, retries above the wire, validation and grader compilation belong to the core. Every
declared fact is checked when plugins load: a malformed one raises ``PluginLoadError`` naming the
plugin and the field.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from rlft._concurrency import map_concurrently
from rlft._facts import (
    GraderFacts,
    HyperparameterFacts,
    Lifecycle,
    Rates,
    normalise_statuses,
    spec_problems,
)
from rlft._models import (
    Capabilities,
    Checkpoint,
    Hyperparameters,
    JobErrorInfo,
    JobEvent,
    JobRecord,
    JobStatus,
    StepMetrics,
    map_status,
)
from rlft._paths import rlft_home
from rlft._secrets import register_secret
from rlft._spec import CreateJobRequest, JobSpec
from rlft.datasets._rules import DatasetRules
from rlft.exceptions import (
    CapabilityError,
    DuplicateProviderError,
    MissingDependencyError,
    PluginLoadError,
)

if TYPE_CHECKING:
    from rlft.datasets import Dataset

# Everything a backend needs, built-in or third-party: the contract, the neutral nouns it takes
# and returns, and the helpers every backend uses. Built-ins import only from public modules.
__all__ = [
    "Capabilities",
    "Checkpoint",
    "CreateJobRequest",
    "DatasetRole",
    "DatasetRules",
    "GraderFacts",
    "HyperparameterFacts",
    "Hyperparameters",
    "JobErrorInfo",
    "JobEvent",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "Lifecycle",
    "Provider",
    "ProviderRegistry",
    "ProviderSettings",
    "ProviderSpec",
    "Rates",
    "StepMetrics",
    "map_concurrently",
    "map_status",
    "register_secret",
    "rlft_home",
]

DatasetRole = Literal["train", "validation"]


class ProviderSettings(BaseModel):
    """Base class of a provider's settings, filled from ``rlft.toml`` ``[<name>]``, env and kwargs.

    Secrets are ``pydantic.SecretStr`` fields and must come from the environment: a secret found
    in ``rlft.toml`` is refused. List secret field names in ``secret_fields`` so the loader knows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that hold secrets; refused in files, masked everywhere."""
    env_fields: ClassVar[Mapping[str, str]] = {}
    """Field name -> the environment variable that fills it (``{"api_key": "OPENAI_API_KEY"}``)."""


class Provider(abc.ABC):
    """A backend: subclass it, declare ``name`` and ``capabilities``, implement the abstracts.

    Optional operations raise ``CapabilityError`` unless overridden; the client checks
    ``capabilities`` before calling them, so this is a backstop.
    """

    name: ClassVar[str]
    """The provider id. Persisted in the job store: never rename it."""
    capabilities: ClassVar[Capabilities]

    def __init__(self, *, settings: ProviderSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:  # settings reprs mask SecretStr
        return f"{type(self).__name__}(settings={self.settings!r})"

    # --- checks before anything leaves the machine -------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:  # noqa: B027 - optional hook, default: no rules
        """Range-check hyperparameters and backend rules. Raise a ``UsageError`` subclass.

        Pure and synchronous: called before any upload.
        """

    # --- one remote operation each -----------------------------------------------------------

    @abc.abstractmethod
    async def upload_dataset(self, dataset: Dataset, *, role: DatasetRole) -> str:
        """Upload a validated dataset and return the backend's file id (or URI)."""

    @abc.abstractmethod
    async def create_job(self, request: CreateJobRequest) -> JobRecord:
        """Create the job. If a job carrying ``request.idempotency_key`` exists, return it."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> JobRecord:
        """Fetch one job."""

    async def list_jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """List recent jobs in one call (or one paginated walk). Flag: ``list_jobs``."""
        raise CapabilityError(provider=self.name, operation="list_jobs")

    async def list_events(self, job_id: str, *, after: str | None = None) -> list[JobEvent]:
        """Events after the cursor ``after`` (oldest first). Flag: ``list_events``."""
        raise CapabilityError(provider=self.name, operation="events")

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Saved checkpoints, oldest first. Flag: ``list_checkpoints``."""
        raise CapabilityError(provider=self.name, operation="checkpoints")

    async def pause_job(self, job_id: str) -> JobRecord:
        """Pause, keeping a resumable checkpoint. Flag: ``pause_job``."""
        raise CapabilityError(provider=self.name, operation="pause")

    async def resume_job(self, job_id: str) -> JobRecord:
        """Resume a paused job. Flag: ``resume_job``."""
        raise CapabilityError(provider=self.name, operation="resume")

    async def cancel_job(self, job_id: str) -> JobRecord:
        """Cancel. Flag: ``cancel_job``."""
        raise CapabilityError(provider=self.name, operation="cancel")

    async def deploy_checkpoint(self, checkpoint: Checkpoint, *, name: str | None = None) -> str:
        """Make a checkpoint callable for inference; return the id to call.

        Flag: ``deploy_checkpoint``.
        """
        raise CapabilityError(provider=self.name, operation="deploy")

    async def generate(
        self,
        *,
        model: str | None,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        max_tokens: int | None = None,
    ) -> list[str]:
        """Sample one completion per prompt (a list of chat messages) from ``model``.

        Used by ``rlft preflight`` to check the base model has a learning signal. Flag:
        ``generate``.
        """
        raise CapabilityError(provider=self.name, operation="inference")

    async def download_results(self, job_id: str, path: Path) -> list[Path]:
        """Download the job's result files into ``path``; return the files written.

        Flag: ``download_results``.
        """
        raise CapabilityError(provider=self.name, operation="result file downloads")

    async def validate_grader(self, payload: Any) -> None:
        """Ask the backend to validate a compiled grader. Flag: ``validate_grader``."""
        raise CapabilityError(provider=self.name, operation="remote grader validation")

    async def run_grader(self, payload: Any, *, sample: str, item: Mapping[str, Any]) -> Any:
        """Score one sample on the backend. Flag: ``run_grader``."""
        raise CapabilityError(provider=self.name, operation="remote grader runs")

    async def aclose(self) -> None:  # noqa: B027 - optional: most providers hold nothing
        """Release connections. Idempotent."""


@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """How a plugin declares a provider and its facts, without importing its SDK.

    Attributes:
        name: The provider id (``"acme"``): what users write; short, lowercase, never renamed.
        settings: The settings model, a ``ProviderSettings`` subclass.
        factory: ``"module:Class"`` of the ``Provider`` subclass; imported on first use.
        extra: The rlft extra that installs the SDK, for the error message.
        requires: Top-level import names the factory needs (``("boto3",)``).
        description: One line for ``rlft providers``.
        statuses: The backend's status words -> neutral ``JobStatus`` (case-insensitive).
            ``map_status(name, word)`` reads it; neutral words always map to themselves.
        dataset: The backend's dataset rules and how rows render for upload (``None``: the
            generic checks only, rows uploaded as OpenAI-style JSONL).
        graders: The grader format it accepts and how a neutral grader compiles for it
            (``None``: the neutral grader itself).
        rates: Prices for the budget guard (``None``: pass ``rates=`` to ``BudgetGuard``).
        hyperparameters: How neutral hyperparameters map to the backend, their ranges, and the
            code that checks them.
        lifecycle: Dates that decide whether jobs can still run, with their source.
    """

    name: str
    settings: type[ProviderSettings]
    factory: str
    extra: str | None = None
    requires: tuple[str, ...] = ()
    description: str = ""
    statuses: Mapping[str, JobStatus] = field(default_factory=dict)
    dataset: DatasetRules | None = None
    graders: GraderFacts | None = None
    rates: Rates | None = None
    hyperparameters: HyperparameterFacts | None = None
    lifecycle: Lifecycle | None = None
    plugin: str = field(default="", compare=False)
    """Filled by the registry: the plugin that registered it."""

    def load(self) -> type[Provider]:
        """Import the provider class, or raise ``MissingDependencyError`` naming the extra."""
        module_path, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing in self.requires:  # the extra is not installed
                raise MissingDependencyError(
                    f"provider {self.name!r}", package=missing, extra=self.extra
                ) from exc
            raise  # a real bug in the plugin: don't disguise it
        cls = getattr(module, attr)
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise TypeError(f"{self.factory} is not a rlft.provider.Provider subclass")
        return cls

    def missing_requirements(self) -> list[str]:
        """The ``requires`` not importable here (without importing them)."""
        from importlib.util import find_spec

        return [name for name in self.requires if find_spec(name) is None]


class ProviderRegistry:
    """The typed registry handed to ``rlft_register_providers``."""

    def __init__(self) -> None:
        self._specs: dict[str, ProviderSpec] = {}
        self._current_plugin = ""

    def add(self, spec: ProviderSpec) -> None:
        """Register a provider after checking every fact it declares.

        Raises:
            DuplicateProviderError: The name is taken by another plugin.
            PluginLoadError: A declared fact is malformed (names the plugin and the field).
        """
        plugin = self._current_plugin or spec.plugin or spec.name
        problems = spec_problems(spec)
        if problems:
            fields = "; ".join(problems)
            raise PluginLoadError(name=plugin, value=f"provider {spec.name!r}: {fields}")
        if spec.name in self._specs:
            raise DuplicateProviderError(
                name=spec.name, factories=(self._specs[spec.name].factory, spec.factory)
            )
        dataset = spec.dataset
        if dataset is not None and dataset.name != spec.name:
            dataset = replace(dataset, name=spec.name)
        spec = replace(spec, statuses=normalise_statuses(spec.statuses), dataset=dataset)
        object.__setattr__(spec, "plugin", self._current_plugin)
        self._specs[spec.name] = spec

    def get(self, name: str) -> ProviderSpec | None:
        """The spec registered under ``name``, or ``None``."""
        return self._specs.get(name)

    def names(self) -> list[str]:
        """Every registered provider id, sorted."""
        return sorted(self._specs)

    def __iter__(self) -> Iterator[ProviderSpec]:
        return iter(self._specs[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._specs)


# The facts' types live in a private module; they are public here.
for _cls in (GraderFacts, HyperparameterFacts, Lifecycle, Rates):
    _cls.__module__ = __name__
del _cls
