"""The live view, summaries, reward curve and guard options of ``rlft run`` / ``rlft jobs``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import click

from rlft._models import JobStatus

if TYPE_CHECKING:
    from rlft._client import Client
    from rlft._job import Job
    from rlft._manager import JobManager
    from rlft._preflight import PreflightReport
    from rlft.guards import Guard

__all__ = [
    "EXIT_FAILED",
    "View",
    "EXIT_GUARD_PAUSED",
    "echo_json",
    "exit_code",
    "guard_options",
    "guards_from_options",
    "job_dict",
    "plot_rewards",
    "print_preflight",
    "print_summary",
    "summarise",
    "watch_jobs",
]

EXIT_FAILED = 1
EXIT_GUARD_PAUSED = 3


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, default=str))


def job_dict(job: Job) -> dict[str, Any]:
    record = job.record
    return {
        "local_id": job.local_id,
        "provider": job.provider,
        "id": job.id,
        "name": record.name,
        "model": record.model,
        "status": job.status.value,
        "provider_status": job.provider_status,
        "fine_tuned_model": record.fine_tuned_model,
        "error": record.error.model_dump() if record.error else None,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }


def guard_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--max-gap", type=float, help="RewardGapGuard: largest train-valid gap."),
        click.option("--gap-evals", type=int, default=3, show_default=True,
                     help="RewardGapGuard: evaluations in a row."),
        click.option("--budget", type=float, help="BudgetGuard: spend cap in USD."),
        click.option("--rate", type=float, help="BudgetGuard: your training price, USD/hour."),
        click.option("--stall", type=float, help="StallGuard: seconds without a new step."),
        click.option("--no-grader-guard", is_flag=True,
                     help="Turn off GraderHealthGuard (on by default: it stops a job whose "
                     "grader fails on over 50% of grades for 3 steps in a row)."),
        click.option("--guard-action", type=click.Choice(["pause", "cancel", "alert"]),
                     default="pause", show_default=True, help="What a tripped guard does."),
        click.option("--fallback", type=click.Choice(["alert", "cancel"]), default="alert",
                     show_default=True, help="What to do when the backend cannot pause."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def guards_from_options(options: dict[str, Any], provider: str) -> list[Guard[Any]]:
    from rlft.guards import BudgetGuard, RateTable, RewardGapGuard, StallGuard, default_rates

    action, fallback = options["guard_action"], options["fallback"]
    guards: list[Guard[Any]] = []
    if options.get("max_gap") is not None:
        guards.append(
            RewardGapGuard(
                threshold=options["max_gap"],
                evaluations=options["gap_evals"],
                action=action,
                fallback=fallback,
            )
        )
    if options.get("budget") is not None:
        rates = default_rates()
        if options.get("rate") is not None:
            rates = RateTable(
                training_per_hour={**rates.training_per_hour, provider: options["rate"]},
                grader_tokens_per_million=rates.grader_tokens_per_million,
            )
        guards.append(
            BudgetGuard(limit=options["budget"], rates=rates, action=action, fallback=fallback)
        )
    if options.get("stall") is not None:
        guards.append(StallGuard(after=options["stall"], action=action, fallback=fallback))
    if not options.get("no_grader_guard"):  # on by default: never train on failed grades
        from rlft.guards import GraderHealthGuard

        guards.append(GraderHealthGuard(action=action))
    return guards


# --- the live view ----------------------------------------------------------------------------


class View:
    """What ``run`` and ``jobs watch`` show: a row per job, or JSON lines with ``--json``."""

    def __init__(self, manager: JobManager, *, as_json: bool) -> None:
        self.manager = manager
        self.as_json = as_json
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.trips: list[Any] = []

    def update(self, update: Any) -> None:
        job = update.job
        if self.as_json:
            payload: dict[str, Any] = {"kind": update.kind, "provider": update.provider}
            if job is not None:
                payload |= {"job": job.id, "local_id": job.local_id, "status": job.status.value}
            if update.event is not None:
                payload["event"] = update.event.model_dump(mode="json", exclude={"raw"})
            if update.trip is not None:
                trip = update.trip
                payload["trip"] = {
                    "guard": trip.guard,
                    "reason": trip.reason,
                    "action": trip.action,
                    "taken": trip.taken,
                    "note": trip.note,
                }
            if update.error is not None:
                payload["error"] = str(update.error)
            echo_json(payload)
        if update.trip is not None:
            self.trips.append(update.trip)
        if job is None:
            return
        row = self.rows.setdefault((job.provider, job.id), {"job": job, "message": ""})
        metrics = update.event.metrics if update.event is not None else None
        if metrics is not None:
            if metrics.step is not None:
                row["step"], row["total"] = metrics.step, metrics.total_steps
            if metrics.train_reward_mean is not None:
                row["train"] = metrics.train_reward_mean
            if metrics.valid_reward_mean is not None:
                row["valid"] = metrics.valid_reward_mean
        elif update.event is not None:
            row["message"] = update.event.message
        if update.kind == "error":
            row["message"] = f"poll failed: {update.error}"
        if update.trip is not None:
            row["message"] = f"guard {update.trip.guard}: {update.trip.taken}"

    def render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        table.add_column("job", no_wrap=True, min_width=17)  # a whole local id, always
        for column in ("status", "step", "progress", "train", "valid", "guards", "last"):
            table.add_column(column)
        for row in self.rows.values():
            job = row["job"]
            step, total = row.get("step"), row.get("total")
            bar: Any = ProgressBar(total=total, completed=step or 0, width=20) if total else ""
            guards = "; ".join(g.describe(job) for g in self.manager.guards) or "-"
            table.add_row(
                f"{job.local_id or job.id}",
                job.status.value,
                f"{step or 0}/{total}" if total else str(step or "-"),
                bar,
                f"{row['train']:.3f}" if "train" in row else "-",
                f"{row['valid']:.3f}" if "valid" in row else "-",
                guards,
                str(row["message"])[:60],
            )
        return table


async def watch_jobs(
    manager: JobManager, jobs: Sequence[Job], *, as_json: bool, events: bool
) -> View:
    view = View(manager, as_json=as_json)
    if as_json:
        async with manager.watch(jobs, events=events) as updates:
            async for update in updates:
                view.update(update)
        return view
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(view.render(), console=console, refresh_per_second=4, transient=False) as live:
        async with manager.watch(jobs, events=events) as updates:
            async for update in updates:
                view.update(update)
                live.update(view.render())
    if not console.is_terminal:  # a piped Live ends mid-line; the summary starts on its own
        console.line()
    return view


async def plot_rewards(client: Client, job: Job) -> Path | None:
    """Save the reward curve next to the job's record; ``None`` without metrics or store."""
    store = client.store
    if store is None or job.local_id is None:
        return None
    events = await store.events(job.local_id)
    points = [
        (e.metrics.step, e.metrics.train_reward_mean, e.metrics.valid_reward_mean)
        for e in events
        if e.metrics is not None and e.metrics.step is not None
    ]
    if not points:
        return None
    path = await store.job_dir(job.local_id) / "reward_curve.png"
    await anyio.to_thread.run_sync(_draw, points, path, f"{job.local_id} ({job.id})")
    return path


def _draw(points: list[tuple[int, float | None, float | None]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for index, label in ((1, "train reward"), (2, "validation reward")):
        steps: list[int] = []
        values: list[float] = []
        for point in points:
            value = point[index]
            if isinstance(value, float | int):
                steps.append(point[0])
                values.append(float(value))
        if steps:
            axes.plot(steps, values, marker="o", label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("mean reward")
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def summarise(job: Job, view: View | None, plot: Path | None) -> dict[str, Any]:
    summary = job_dict(job)
    row = view.rows.get((job.provider, job.id), {}) if view is not None else {}
    summary |= {
        "steps": row.get("step"),
        "train_reward_mean": row.get("train"),
        "valid_reward_mean": row.get("valid"),
        "guard_trips": [
            {"guard": t.guard, "reason": t.reason, "taken": t.taken, "note": t.note}
            for t in (view.trips if view is not None else [])
            if t.job_id == job.id
        ],
        "reward_curve": str(plot) if plot else None,
    }
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    click.echo(
        f"job {summary['local_id']} ({summary['provider']} {summary['id']}): {summary['status']}"
    )
    if summary.get("steps") is not None:
        click.echo(
            f"  steps {summary['steps']}, train reward {summary['train_reward_mean']}, "
            f"validation reward {summary['valid_reward_mean']}"
        )
    if summary.get("fine_tuned_model"):
        click.echo(f"  model {summary['fine_tuned_model']}")
    if summary.get("error"):
        click.echo(f"  error {summary['error']['message']}")
    for trip in summary["guard_trips"]:
        note = f" ({trip['note']})" if trip["note"] else ""
        click.echo(f"  guard {trip['guard']}: {trip['reason']} -> {trip['taken']}{note}")
    if summary.get("reward_curve"):
        click.echo(f"  reward curve {summary['reward_curve']}")


def exit_code(job: Job, view: View | None) -> int:
    if job.status is JobStatus.SUCCEEDED:
        return 0
    paused = job.status is JobStatus.PAUSED and view is not None and view.trips
    return EXIT_GUARD_PAUSED if paused else EXIT_FAILED


def print_preflight(report: PreflightReport) -> None:
    click.echo(report.format())
    for sample in report.samples:
        flag = f" [{', '.join(sample.errors)}]" if sample.errors else ""
        where = f"line {sample.line}" if sample.line else f"row {sample.index}"
        click.echo(f"  {where}: {sample.score:.3f}{flag}  {sample.completion[:70]!r}")
