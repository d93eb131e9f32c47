"""``rlft run``, ``rlft preflight`` and ``rlft jobs ...``: jobs from the command line.

Each command is a thin synchronous shell over the async API. Ctrl-C while watching stops the
watching only: the job keeps running, and ``rlft jobs watch <id>`` reattaches to it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from rlft.cli._jobs_view import (
    EXIT_FAILED,
    echo_json,
    exit_code,
    guard_options,
    guards_from_options,
    job_dict,
    plot_rewards,
    print_preflight,
    print_summary,
    summarise,
    watch_jobs,
)
from rlft.exceptions import RLFTError, UsageError

if TYPE_CHECKING:
    from rlft._client import Client
    from rlft._job import Job
    from rlft._preflight import PreflightReport
    from rlft._spec import JobSpec

__all__ = ["jobs", "preflight", "run"]

T = TypeVar("T")

EXIT_INTERRUPTED = 130


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run`` that unwraps a task group's lone error, so the CLI prints it plainly."""
    try:
        return anyio.run(fn)
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        for leaf in leaves:
            click.secho(f"error: {leaf}", fg="red", err=True)
        raise SystemExit(EXIT_FAILED) from None


def _one_line(exc: BaseException) -> str:
    """An error's message on one line (a group's errors joined)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_one_line(leaf) for leaf in _leaves(exc))
    return " ".join(str(exc).split()) or type(exc).__name__


def _rlft_errors_only(group: BaseExceptionGroup[BaseException]) -> bool:
    return all(isinstance(leaf, RLFTError) for leaf in _leaves(group))


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _client(provider: str | None, profile: str | None, cwd: Path | None = None) -> Client:
    from rlft._client import Client

    return Client(provider=provider, profile=profile, cwd=cwd)


# --- shared options ---------------------------------------------------------------------------


def _provider_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--profile", help="Profile of rlft.toml to use.")(fn)
    return click.option("--provider", "-p", help="Provider id (beats rlft.toml).")(fn)


_report_to_option = click.option(
    "--report-to",
    multiple=True,
    help="Experiment trackers for the metrics: trackio, wandb, mlflow or none (comma-separated "
    "or repeated; default: [tracking] report_to in rlft.toml).",
)


# --- rlft preflight ---------------------------------------------------------------------------


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@_provider_options
@click.option("--samples", "-k", default=8, show_default=True, help="Prompts to sample.")
@click.option(
    "--per-prompt", "-n", default=4, show_default=True, help="Answers sampled per prompt."
)
@click.option("--seed", default=0, show_default=True, help="Which prompts are picked.")
@click.option("--max-tokens", type=int, help="Longest completion.")
@click.option("--strict", is_flag=True, help="Exit 1 when preflight warns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preflight(
    job_file: Path,
    provider: str | None,
    profile: str | None,
    samples: int,
    per_prompt: int,
    seed: int,
    max_tokens: int | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Sample the base model n times on k training prompts, grade the answers, and warn if RFT
    can't learn (mean reward near 0 or 1, many prompts whose samples all scored the same)."""
    from rlft._jobfile import load_job_file

    spec = load_job_file(job_file)

    async def main() -> PreflightReport:
        async with _client(provider, profile, job_file.parent) as client:
            return await client.jobs.preflight(
                spec, samples=samples, seed=seed, max_tokens=max_tokens, per_prompt=per_prompt
            )

    report = _run(main)
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        print_preflight(report)
    if strict and report.warnings:
        sys.exit(EXIT_FAILED)


# --- rlft run ---------------------------------------------------------------------------------


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@_provider_options
@click.option("--no-preflight", is_flag=True, help="Skip sampling the base model first.")
@click.option("--samples", "-k", default=8, show_default=True, help="Preflight prompts.")
@click.option("--detach", is_flag=True, help="Create the job and return without watching.")
@click.option(
    "--again",
    is_flag=True,
    help="Start a new job even if an identical one already ran (by default the same job file "
    "finds its earlier job instead of paying twice).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a live view.")
@_report_to_option
@guard_options
def run(
    job_file: Path,
    provider: str | None,
    profile: str | None,
    no_preflight: bool,
    samples: int,
    detach: bool,
    again: bool,
    as_json: bool,
    report_to: tuple[str, ...],
    **options: Any,
) -> None:
    """Validate, preflight, create and watch the job in JOB_FILE (a job.toml)."""
    import uuid

    from rlft._jobfile import load_job_file
    from rlft._manager import JobManager
    from rlft.guards import BudgetGuard

    spec: JobSpec = load_job_file(job_file)
    if again:  # a new label changes the spec's hash, hence its idempotency key
        labels = {**spec.labels, "rlft_run": uuid.uuid4().hex[:12]}
        spec = spec.model_copy(update={"labels": labels})
    say = (lambda text: None) if as_json else click.echo
    state: dict[str, Any] = {}

    async def main() -> int:
        async with _client(provider, profile, job_file.parent) as client:
            target = client.provider
            checked = client.jobs.check(spec)  # the one check of this run: submit reuses it
            say(f"{job_file}: valid for {target.name} ({len(spec.train)} training rows)")
            guards = guards_from_options(options, target.name)
            trackers = _trackers(client, report_to)  # a tracker that can't work fails first
            for guard in guards:  # a guard that can't work must fail before anything is paid
                if isinstance(guard, BudgetGuard):
                    guard.check_rate(target.name, spec.model)
            if not no_preflight:
                try:
                    report = await client.jobs.preflight(spec, samples=samples)
                except (RLFTError, BaseExceptionGroup) as exc:
                    # Preflight is advice: whatever rlft error stops it (no inference, no base
                    # model, a refused or failed call) is said, and the create still goes ahead.
                    if isinstance(exc, BaseExceptionGroup) and not _rlft_errors_only(exc):
                        raise
                    if as_json:
                        echo_json({"kind": "preflight_skipped", "reason": _one_line(exc)})
                    say(f"preflight skipped: {_one_line(exc)}")
                else:
                    if as_json:
                        echo_json({"kind": "preflight", **report.model_dump(mode="json")})
                    else:
                        click.echo(report.format())
            manager = JobManager(client=client, guards=guards, trackers=trackers)
            (job,) = await manager.submit([checked])
            state["job"] = job
            if job.status.is_terminal:
                say(
                    f"an identical job already ran: {job.local_id} ({target.name} {job.id}, "
                    f"{job.status.value}); showing it. `rlft run --again` trains anew"
                )
            else:
                say(f"created job {job.local_id} ({target.name} {job.id})")
                if chosen := (job.record.raw or {}).get("settings_chosen"):  # and why
                    say(str(chosen))
            if detach:
                if as_json:
                    echo_json({"kind": "created", **job_dict(job)})
                return 0
            view = await watch_jobs(manager, [job], as_json=as_json, events=True)
            plot = await plot_rewards(client, job)
            summary = summarise(job, view, plot)
            if as_json:
                echo_json({"kind": "summary", **summary})
            else:
                print_summary(summary)
            return exit_code(job, view)

    try:
        code = _run(main)
    except KeyboardInterrupt:
        job = state.get("job")
        if job is not None:
            click.echo(
                f"\nstopped watching; job {job.local_id} keeps running. Reattach with "
                f"`rlft jobs watch {job.local_id}`, stop it with `rlft jobs cancel {job.local_id}`",
                err=True,
            )
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


def _trackers(client: Client, report_to: tuple[str, ...]) -> list[Any]:
    from rlft._config import tracking_config
    from rlft.tracking import make_trackers, split_names

    names, project = tracking_config(client.config)
    return make_trackers(split_names(report_to) if report_to else names, project=project)


# --- rlft jobs --------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Jobs in the job store, on every provider: list, inspect, watch and control them."""


@jobs.command("list")
@click.option("--provider", "-p", help="Only this provider's jobs.")
@click.option("--status", "-s", multiple=True, help="Only these statuses (repeatable).")
@click.option("--label", "-l", multiple=True, help="Only jobs with label KEY=VALUE.")
@click.option("--active", is_flag=True, help="Only jobs not yet finished.")
@click.option("--limit", "-n", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_jobs(
    provider: str | None,
    status: tuple[str, ...],
    label: tuple[str, ...],
    active: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List recorded jobs, newest first (no network)."""
    labels = {}
    for item in label:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--label {item!r}: write KEY=VALUE")
        labels[key] = value

    async def main() -> list[Any]:
        client = _client(None, None)
        store = client.store
        if store is None:
            return []
        try:
            return await store.jobs(
                provider=provider,
                status=list(status) or None,
                labels=labels or None,
                active=True if active else None,
                limit=limit,
            )
        finally:
            await client.aclose()

    rows = _run(main)
    if as_json:
        echo_json([row.as_dict() for row in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rlft jobs")
    for column in ("local id", "provider", "job id", "name", "status", "recorded"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.local_id,
            row.provider,
            row.provider_job_id or "-",
            row.name or "-",
            row.status,
            row.recorded_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)


def _job_command(
    fn: Callable[[Client, Job, bool], Awaitable[Any]],
) -> Callable[[str, bool], None]:
    """Reattach to JOB_ID, run ``fn``, print what it returns (JSON with ``--json``)."""

    def command(job_id: str, as_json: bool) -> None:
        async def main() -> Any:
            async with _client(None, None) as client:
                job = await client.jobs.get(job_id)
                return await fn(client, job, as_json)

        result = _run(main)
        if result is not None:
            if as_json:
                echo_json(result)
            else:
                click.echo(result if isinstance(result, str) else json.dumps(result, indent=2))

    command.__doc__ = fn.__doc__
    return command


def _job_id_command(name: str, fn: Callable[[Client, Job, bool], Awaitable[Any]]) -> None:
    command = _job_command(fn)
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    command = click.argument("job_id")(command)
    jobs.command(name)(command)


async def _show(client: Client, job: Job, as_json: bool) -> Any:
    """Show a job, refreshed from its backend (by local or backend id)."""
    data = job_dict(job)
    return data if as_json else "\n".join(f"{k}: {v}" for k, v in data.items() if v is not None)


async def _checkpoints(client: Client, job: Job, as_json: bool) -> Any:
    """List a job's checkpoints, oldest first."""
    found = await job.checkpoints()
    if as_json:
        return [c.model_dump(mode="json", exclude={"raw"}) for c in found]
    lines = [f"{c.id}  step {c.step}  {c.model}" for c in found]
    return "\n".join(lines) or "no checkpoints yet"


def _control(action: str) -> Callable[[Client, Job, bool], Awaitable[Any]]:
    async def control(client: Client, job: Job, as_json: bool) -> Any:
        await getattr(job, action)()
        data = job_dict(job)
        return data if as_json else f"{job.local_id} ({job.id}): {job.status.value}"

    control.__doc__ = {
        "pause": "Pause a job (keeps a resumable checkpoint, where the backend can).",
        "resume": "Resume a paused job (the local runner also resumes a job whose worker died).",
        "cancel": "Cancel a job on its backend. This stops the job; it cannot be resumed.",
    }[action]
    return control


_job_id_command("show", _show)
_job_id_command("checkpoints", _checkpoints)
for _action in ("pause", "resume", "cancel"):
    _job_id_command(_action, _control(_action))


@jobs.command("events")
@click.argument("job_id")
@click.option("--after", help="Start after this event id.")
@click.option("--follow", "-f", is_flag=True, help="Keep reading until the job ends.")
@click.option("--stored", is_flag=True, help="Read the events the watcher saved (no network).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def events(job_id: str, after: str | None, follow: bool, stored: bool, as_json: bool) -> None:
    """Print a job's events, oldest first."""

    def show(event: Any) -> None:
        if as_json:
            echo_json(event.model_dump(mode="json", exclude={"raw"}))
        else:
            click.echo(f"{event.at:%Y-%m-%d %H:%M:%S}  {event.level:7}  {event.message}")

    async def main() -> None:
        async with _client(None, None) as client:
            store = client.store
            if stored and store is not None:
                row = await store.find(job_id)
                if row is None:
                    raise UsageError(f"no job {job_id!r} in the job store ({store.path})")
                for event in await store.events(row.local_id, after=after):
                    show(event)
                return
            job = await client.jobs.get(job_id)
            async for event in job.events(after=after, follow=follow):
                show(event)

    try:
        _run(main)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


@jobs.command("watch")
@click.argument("job_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a live view.")
@_report_to_option
@guard_options
def watch(
    job_ids: tuple[str, ...], as_json: bool, report_to: tuple[str, ...], **options: Any
) -> None:
    """Watch jobs until they end (default: every job in the store not yet settled).

    Unsettled: not finished, or finished with its last events not stored yet (a watcher was
    killed in between). Watching them stores those events; then they are settled.
    """
    from rlft._manager import JobManager

    async def main() -> int:
        async with _client(None, None) as client:
            manager = JobManager(client=client, trackers=_trackers(client, report_to))
            watched = await manager.attach(list(job_ids) or None)
            if not watched:
                if not as_json:
                    click.echo("no unfinished jobs in the job store")
                return 0
            providers = sorted({job.provider for job in watched})
            if options.get("rate") is not None and len(providers) > 1:
                raise UsageError(
                    f"--rate prices one provider, but these jobs run on {', '.join(providers)}; "
                    "watch one provider's jobs at a time"
                )
            manager.guards = guards_from_options(options, providers[0])
            view = await watch_jobs(manager, watched, as_json=as_json, events=True)
            codes = []
            for job in watched:
                summary = summarise(job, view, await plot_rewards(client, job))
                if as_json:
                    echo_json({"kind": "summary", **summary})
                else:
                    print_summary(summary)
                codes.append(exit_code(job, view))
            return max(codes)

    try:
        code = _run(main)
    except KeyboardInterrupt:
        click.echo("\nstopped watching; the jobs keep running", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


@jobs.command("doctor")
@click.option("--check", "check_only", is_flag=True, help="Only report; change nothing.")
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The store file (default: the job store of RLFT_HOME).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(check_only: bool, store: Path | None, as_json: bool) -> None:
    """Check the job store; back it up and repair it when it is damaged.

    Rows that cannot be read are set aside in a quarantine file next to the store, dropped
    tables are recreated, and the original file is copied next to itself first. Run it while
    no other rlft process uses the store.
    """
    from rlft._doctor import doctor as run_doctor
    from rlft._store import default_store_path

    report = run_doctor(store or default_store_path(), repair=not check_only)
    if as_json:
        echo_json(report.as_dict())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok or (check_only and report.problems):
        sys.exit(EXIT_FAILED)
