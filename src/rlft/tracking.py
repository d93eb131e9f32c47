"""Experiment tracking: job metrics go to trackio, Weights & Biases or MLflow as they arrive.

```python
manager = rlft.JobManager(client=client, trackers=["trackio"])       # or TrackioTracker(...)
```

or ``rlft run job.toml --report-to trackio``, or in ``rlft.toml``:

```toml
[tracking]
report_to = ["trackio", "mlflow"]
project = "ticket-triage"
```

One tracker run per job, named after the job. Metric names are the same on every backend
(``metric_names``): ``train/reward_mean``, ``valid/reward_mean``, ``grader/<name>``,
``errors/parse_error_rate``, ``tokens/<name>``... Each tracker is an optional extra
(``rlft[trackio]``, ``rlft[wandb]``, ``rlft[mlflow]``), imported on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import netrc
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rlft._models import JobEvent, StepMetrics
from rlft.exceptions import MissingDependencyError, RLFTError, UsageError

if TYPE_CHECKING:
    from rlft._job import Job

__all__ = [
    "TRACKERS",
    "MlflowTracker",
    "Reporter",
    "Tracker",
    "TrackingError",
    "TrackioTracker",
    "WandbTracker",
    "make_trackers",
    "metric_names",
    "split_names",
]

TRACKERS = ("trackio", "wandb", "mlflow")
"""The tracker names ``--report-to`` and ``[tracking] report_to`` accept."""

DEFAULT_PROJECT = "rlft"


def metric_names(metrics: StepMetrics) -> dict[str, float]:
    """The tracker metrics of one step, named the same on every backend.

    ``train/reward_mean``, ``train/reward_std``, ``valid/reward_mean``, ``grader/<name>``
    (per-grader rewards), ``errors/parse_error_rate``, ``errors/grader_error_rate``,
    ``train/kl``, ``train/completion_length_mean``, ``perf/step_seconds``, ``tokens/<name>``
    and ``extra/<name>``. Fields the backend did not report are left out.
    """
    fields = {
        "train/reward_mean": metrics.train_reward_mean,
        "train/reward_std": metrics.train_reward_std,
        "valid/reward_mean": metrics.valid_reward_mean,
        "errors/parse_error_rate": metrics.parse_error_rate,
        "errors/grader_error_rate": metrics.grader_error_rate,
        "train/kl": metrics.kl,
        "train/completion_length_mean": metrics.completion_length_mean,
        "perf/step_seconds": metrics.step_seconds,
    }
    out = {key: float(value) for key, value in fields.items() if value is not None}
    for prefix, values in (
        ("grader", metrics.grader_rewards),
        ("tokens", metrics.tokens),
        ("extra", metrics.extra),
    ):
        out.update({f"{prefix}/{key}": float(value) for key, value in values.items()})
    return out


@runtime_checkable
class Tracker(Protocol):
    """Where job metrics go. Calls are synchronous and run in a worker thread, one at a time.

    ``run`` is the tracker run's name (the job's local id, or its backend id).
    """

    name: str

    def start(self, run: str, config: Mapping[str, Any]) -> None:
        """Open (or resume) the run of one job."""
        ...

    def log(self, run: str, metrics: Mapping[str, float], step: int | None) -> None:
        """Log one step's metrics."""
        ...

    def finish(self, run: str, status: str) -> None:
        """Close the run; ``status`` is the job's final status."""
        ...


def _require(package: str, extra: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise MissingDependencyError(f"tracking to {extra}", package=package, extra=extra)


class TrackioTracker:
    """trackio: local-first, a SQLite file per project under ``TRACKIO_DIR``; ``trackio show``.

    Args:
        project: The trackio project.
        space_id: A Hugging Face Space to sync to (``None``: local only, no network).
    """

    name = "trackio"

    def __init__(self, *, project: str = DEFAULT_PROJECT, space_id: str | None = None) -> None:
        _require("trackio", "trackio")
        self.project, self.space_id = project, space_id
        self._runs: dict[str, Any] = {}

    def start(self, run: str, config: Mapping[str, Any]) -> None:
        import trackio

        with contextlib.redirect_stdout(io.StringIO()):  # its banner would break `--json` output
            self._runs[run] = trackio.init(
                project=self.project,
                name=run,
                config=dict(config),
                space_id=self.space_id,
                resume="allow",
                embed=False,
                auto_log_cpu=False,
                auto_log_gpu=False,
            )

    def log(self, run: str, metrics: Mapping[str, float], step: int | None) -> None:
        self._runs[run].log(dict(metrics), step=step)

    def finish(self, run: str, status: str) -> None:
        handle = self._runs.pop(run, None)
        if handle is not None:
            with contextlib.redirect_stdout(io.StringIO()):
                handle.finish()


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        found = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        return False
    return found is not None


class WandbTracker:
    """Weights & Biases. Offline (``WANDB_MODE=offline`` or ``mode="offline"``) needs no login.

    Args:
        project: The W&B project.
        entity: The W&B entity (team or user); default: the logged-in user's.
        mode: ``"online"``, ``"offline"`` or ``"disabled"`` (default: ``WANDB_MODE``, else online).
        dir: Where W&B writes its run files (default: ``WANDB_DIR`` or the current directory).

    Raises:
        UsageError: Online without a login (no ``WANDB_API_KEY``, no ``wandb login``).
    """

    name = "wandb"

    def __init__(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        entity: str | None = None,
        mode: str | None = None,
        dir: str | Path | None = None,
    ) -> None:
        _require("wandb", "wandb")
        self.project, self.entity, self.dir = project, entity, dir
        self.mode = mode or os.environ.get("WANDB_MODE") or "online"
        if self.mode not in {"offline", "disabled", "dryrun"} and not _wandb_logged_in():
            raise UsageError(
                "Weights & Biases is not logged in: run `wandb login` or set WANDB_API_KEY, or "
                "set WANDB_MODE=offline to log locally and `wandb sync` later"
            )
        self._runs: dict[str, Any] = {}

    def start(self, run: str, config: Mapping[str, Any]) -> None:
        import wandb

        self._runs[run] = wandb.init(
            project=self.project,
            entity=self.entity,
            name=run,
            id=re.sub(r"[^A-Za-z0-9_-]", "-", run),  # a restarted watcher resumes the same run
            resume="allow",
            config=dict(config),
            dir=str(self.dir) if self.dir is not None else None,
            mode=self.mode,  # type: ignore[arg-type]
            reinit="create_new",  # one run per job, many jobs at once
        )

    def log(self, run: str, metrics: Mapping[str, float], step: int | None) -> None:
        self._runs[run].log(dict(metrics), step=step)

    def finish(self, run: str, status: str) -> None:
        handle = self._runs.pop(run, None)
        if handle is not None:
            handle.finish(exit_code=0 if status == "succeeded" else 1)


class MlflowTracker:
    """MLflow, through ``MlflowClient`` (no global active run, so many jobs log at once).

    Args:
        project: The MLflow experiment (created when missing).
        tracking_uri: Default: ``MLFLOW_TRACKING_URI``, else MLflow's own default.
    """

    name = "mlflow"

    def __init__(self, *, project: str = DEFAULT_PROJECT, tracking_uri: str | None = None) -> None:
        _require("mlflow", "mlflow")
        self.project, self.tracking_uri = project, tracking_uri
        self._client: Any = None
        self._runs: dict[str, str] = {}

    def _mlflow(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def start(self, run: str, config: Mapping[str, Any]) -> None:
        client = self._mlflow()
        experiment = client.get_experiment_by_name(self.project)
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment(self.project)
        )
        # A restarted watcher finds the job's run again instead of splitting its curve in two.
        found = client.search_runs(
            [experiment_id],
            filter_string="tags.`rlft.job` = '" + run.replace("'", "\\'") + "'",
            max_results=1,
        )
        if found:
            self._runs[run] = found[0].info.run_id
            client.update_run(found[0].info.run_id, status="RUNNING")
            return
        created = client.create_run(experiment_id, run_name=run, tags={"rlft.job": run})
        self._runs[run] = created.info.run_id
        for key, value in config.items():
            client.log_param(created.info.run_id, key, str(value))

    def log(self, run: str, metrics: Mapping[str, float], step: int | None) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(key, value, stamp, step or 0) for key, value in metrics.items()]
        self._mlflow().log_batch(self._runs[run], metrics=batch)

    def finish(self, run: str, status: str) -> None:
        run_id = self._runs.pop(run, None)
        if run_id is not None:
            state = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(status, "FAILED")
            self._mlflow().set_terminated(run_id, status=state)


def make_trackers(names: Iterable[str | Tracker], *, project: str | None = None) -> list[Tracker]:
    """Build trackers from names (``"trackio"``, ``"wandb"``, ``"mlflow"``) or pass objects on.

    Each is checked now (installed, logged in), so a bad choice fails before any job starts.

    Raises:
        UsageError: An unknown name, a tracker not logged in.
        MissingDependencyError: A tracker not installed (the message is the pip command).
    """
    built: list[Tracker] = []
    for item in names:
        if not isinstance(item, str):
            built.append(item)
            continue
        name = item.strip().lower()
        if name in {"", "none"}:
            continue
        options = {"project": project or DEFAULT_PROJECT}
        if name == "trackio":
            built.append(TrackioTracker(**options))
        elif name == "wandb":
            built.append(WandbTracker(**options))
        elif name == "mlflow":
            built.append(MlflowTracker(**options))
        else:
            raise UsageError(
                f"unknown tracker {item!r}; choose from {', '.join(TRACKERS)} (or none)"
            )
    return built


def split_names(values: Sequence[str]) -> list[str]:
    """``("trackio,wandb", "mlflow")`` -> ``["trackio", "wandb", "mlflow"]``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class TrackingError(RLFTError):
    """A tracker refused a call. The job and the job store are not affected."""


class Reporter:
    """Feeds job events to trackers: one run per job, opened on its first metrics.

    Tracker calls run in a worker thread, one at a time (trackers are not all thread-safe). A
    failing tracker never stops a watch: ``event``/``end`` return its errors instead, and that
    tracker is left alone for the rest of that job.
    """

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        import anyio

        self.trackers = list(trackers)
        self._open: dict[tuple[str, str], set[int]] = {}  # job -> indexes of trackers open
        self._broken: set[tuple[str, str, int]] = set()
        self._lock = anyio.Lock()

    async def _call(self, key: tuple[str, str], index: int, fn: Any, *args: Any) -> str | None:
        import anyio

        tracker = self.trackers[index]
        if (*key, index) in self._broken:
            return None
        try:
            async with self._lock:
                await anyio.to_thread.run_sync(fn, *args)
        except Exception as exc:  # a third-party library: any failure is reported, not raised
            self._broken.add((*key, index))
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"tracker {tracker.name} failed for job {key[1]}: {reason}"
        return None

    async def event(self, job: Job, event: JobEvent) -> list[TrackingError]:
        """Log the event's metrics (if any) to every tracker; return what failed."""
        if event.metrics is None:
            return []
        values = metric_names(event.metrics)
        if not values:
            return []
        key, run = (job.provider, job.id), job.local_id or job.id
        problems = []
        opened = self._open.setdefault(key, set())
        for index, tracker in enumerate(self.trackers):
            if index not in opened:
                config = {"provider": job.provider, "job_id": job.id, "model": job.record.model}
                problem = await self._call(key, index, tracker.start, run, config)
                if problem is None:
                    opened.add(index)
            if index in opened:
                problem = await self._call(key, index, tracker.log, run, values, event.metrics.step)
            if problem is not None:
                problems.append(TrackingError(problem))
        return problems

    async def end(self, job: Job) -> list[TrackingError]:
        """Close the job's runs (once), with its final status."""
        key, run = (job.provider, job.id), job.local_id or job.id
        problems = []
        for index in sorted(self._open.pop(key, set())):
            tracker = self.trackers[index]
            problem = await self._call(key, index, tracker.finish, run, job.status.value)
            if problem is not None:
                problems.append(TrackingError(problem))
        return problems
