"""``rlft eval``: score the base model and checkpoints on a dataset with the job's graders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rlft.cli._jobs import _client, _provider_options, _run
from rlft.exceptions import UsageError

if TYPE_CHECKING:
    from rlft._client import Client
    from rlft._models import Checkpoint

__all__ = ["eval_command"]


async def _job_models(client: Client, job_id: str) -> list[str | Checkpoint]:
    """The job's base model (when it has a folder or an id) and then its checkpoints by step."""
    job = await client.jobs.get(job_id)
    checkpoints = await job.checkpoints()
    models: list[str | Checkpoint] = []
    if job.record.model:
        models.append(job.record.model)
    elif checkpoints:  # the local tiny model: its base folder sits in the job folder
        for parent in Path(checkpoints[0].model).parents[:2]:
            if (parent / "base_model").is_dir():
                models.append(str(parent / "base_model"))
                break
    models.extend(checkpoints)
    if not models:
        raise UsageError(f"job {job_id} has no base model or checkpoints to evaluate yet")
    return models


@click.command("eval")
@click.argument("job_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--grader", "grader_path", type=click.Path(path_type=Path), help="A grader file.")
@click.option(
    "--dataset",
    "dataset_path",
    type=click.Path(path_type=Path),
    help="JSONL rows to answer (default: the job file's validation set, else its training set).",
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="A model folder (base model, checkpoint) or a model id the provider serves; repeatable.",
)
@click.option("--job", "job_id", help="Add this job's base model and every checkpoint.")
@_provider_options
@click.option("--max-tokens", type=int, help="Longest completion (default 64).")
@click.option("--limit", "-n", type=int, help="Score only the first N rows.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("rlft-eval.png"),
    show_default=True,
    help="Where the comparison chart goes.",
)
@click.option("--no-plot", is_flag=True, help="Write no chart.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_command(
    job_file: Path | None,
    grader_path: Path | None,
    dataset_path: Path | None,
    models: tuple[str, ...],
    job_id: str | None,
    provider: str | None,
    profile: str | None,
    max_tokens: int | None,
    limit: int | None,
    plot: Path,
    no_plot: bool,
    as_json: bool,
) -> None:
    """Score models on a dataset with a job's graders: mean, pass rate, per grader, errors.

    Give a JOB_FILE (its grader and validation set), or --grader and --dataset. Models are
    folders on disk (sampled with transformers, or vLLM when installed) or ids sampled through
    the provider; --job adds a job's base model and checkpoints.
    """
    from rlft._eval import evaluate, is_folder
    from rlft.datasets import Dataset
    from rlft.graders import load as load_grader

    if job_file is None and (grader_path is None or dataset_path is None):
        raise UsageError("rlft eval needs a JOB_FILE, or both --grader and --dataset")
    grader: Any = None
    dataset: Any = None
    if job_file is not None:
        from rlft._jobfile import load_job_file

        spec = load_job_file(job_file)
        grader, dataset = spec.grader, spec.validation or spec.train
    if grader_path is not None:
        grader = load_grader(grader_path)
    if dataset_path is not None:
        dataset = Dataset.from_jsonl(dataset_path)
    if not models and job_id is None:
        raise UsageError("name the models to score: --model FOLDER_OR_ID (repeatable) or --job ID")

    async def main() -> Any:
        async with _client(provider, profile, job_file.parent if job_file else None) as client:
            chosen: list[Any] = list(models)
            if job_id is not None:
                chosen.extend(await _job_models(client, job_id))
            hosted = not all(is_folder(model) for model in chosen)
            return await evaluate(
                chosen,
                dataset=dataset,
                grader=grader,
                provider=client.provider if hosted else None,
                max_tokens=max_tokens,
                limit=limit,
                plot=None if no_plot else plot,
            )

    report = _run(main)
    if as_json:
        from rlft.cli._jobs_view import echo_json

        echo_json(report.model_dump(mode="json"))
        return
    click.echo(report.format())
    if not no_plot:
        click.echo(f"plot: {plot}")
