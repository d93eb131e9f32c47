"""The rlft quickstart: train a model with RFT on your own machine and watch the reward rise.

Run from the repository root:  python examples/quickstart/quickstart.py

It reads ``job.toml`` (the data, the grader, the hyperparameters) and ``rlft.toml`` (the
provider: ``local``) from this folder, starts the job, shows live progress, and ends by
printing the reward rise, the checkpoints and the reward-curve PNG.

The model is rlft's tiny demonstration model (87K parameters, built offline from the dataset),
so it learns this one task in about a minute on a laptop CPU. Set ``model`` in ``job.toml`` to a
Hugging Face model id or folder for real work.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import rlft

HERE = Path(__file__).resolve().parent
console = Console()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


async def main(job_file: Path) -> int:
    started = time.monotonic()
    spec = rlft.load_job_file(job_file)  # datasets, grader and hyperparameters, checked
    async with rlft.Client(cwd=HERE) as client:  # provider from ./rlft.toml: "local"
        # A fresh idempotency key: each run of the quickstart trains anew (the default key, the
        # spec's hash, would hand back the finished job from your last run).
        job = await client.jobs.create(spec=spec, idempotency_key=uuid.uuid4().hex)
        console.print(f"[bold]job[/] {job.id} on [bold]{client.provider.name}[/]: {spec.name}")

        rewards: dict[int, float] = {}
        first_metrics: float | None = None
        columns = (
            TextColumn("[bold blue]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reward [bold]{task.fields[reward]}[/]  valid {task.fields[valid]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("train", total=None, reward="-", valid="-")
            async for event in job.events():  # follows the job until it ends
                metrics = event.metrics
                if event.kind == "message" or event.level in ("warning", "error"):
                    progress.console.print(f"  {event.message}", soft_wrap=True)
                if event.kind != "metrics" or metrics is None or metrics.step is None:
                    continue
                first_metrics = first_metrics or time.monotonic()
                if metrics.train_reward_mean is not None:
                    rewards[metrics.step] = metrics.train_reward_mean
                update: dict[str, object] = {"completed": metrics.step}
                update["total"] = metrics.total_steps
                if metrics.train_reward_mean is not None:
                    update["reward"] = f"{metrics.train_reward_mean:.2f}"
                if metrics.valid_reward_mean is not None:
                    update["valid"] = f"{metrics.valid_reward_mean:.2f}"
                    progress.console.print(
                        f"  step {metrics.step:>4}: validation reward "
                        f"{metrics.valid_reward_mean:.2f}"
                    )
                progress.update(task, **update)  # type: ignore[arg-type]

        await job.wait()
        training_seconds = time.monotonic() - (first_metrics or started)
        if job.status is not rlft.JobStatus.SUCCEEDED:
            reason = job.error.message if job.error else job.status.value
            console.print(f"[bold red]the job ended {job.status.value}[/]: {reason}")
            return 1
        checkpoints = await job.checkpoints()

    steps = sorted(rewards)
    start = _mean([rewards[s] for s in steps[:10]])
    end = _mean([rewards[s] for s in steps[-10:]])
    console.print(
        f"\n[bold green]done[/] in {time.monotonic() - started:.0f}s "
        f"({training_seconds:.0f}s of training): mean reward {start:.2f} (first 10 steps) -> "
        f"[bold]{end:.2f}[/] (last 10 steps)"
    )
    curve = Table(title="mean train reward", show_edge=False)
    marks = [s for s in steps if s % 25 == 0] or steps
    for step in marks:
        curve.add_column(f"{step}", justify="right")
    curve.add_row(*(f"{rewards[s]:.2f}" for s in marks))
    console.print(curve)

    raw = job.record.raw or {}
    table = Table(title="checkpoints")
    for column in ("step", "train reward", "valid reward", "folder"):
        table.add_column(column, overflow="fold")
    for checkpoint in checkpoints:
        m = checkpoint.metrics
        table.add_row(
            str(checkpoint.step),
            f"{m.train_reward_mean:.2f}" if m.train_reward_mean is not None else "-",
            f"{m.valid_reward_mean:.2f}" if m.valid_reward_mean is not None else "-",
            Path(checkpoint.model).name,
        )
    console.print(table)
    if checkpoints:
        where = Path(checkpoints[-1].model).parent
        console.print(f"checkpoints:  {where}", soft_wrap=True)
    console.print(f"final model:  {job.fine_tuned_model}", soft_wrap=True)
    console.print(f"reward curve: {raw.get('reward_curve', '(not drawn)')}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train the quickstart job locally.")
    parser.add_argument("--job", type=Path, default=HERE / "job.toml", help="the job file")
    args = parser.parse_args()
    raise SystemExit(anyio.run(main, args.job))
