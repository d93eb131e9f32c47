"""``rlft validate``: check a dataset (and its validation set) before anything is uploaded."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["validate"]


@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--validation",
    "validation_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The validation JSONL file, checked with the validation-set rules.",
)
@click.option(
    "--grader",
    "grader_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A grader (.json/.yaml): every item.* field it reads must be in every row.",
)
@click.option(
    "--provider",
    "-p",
    metavar="ID",
    help="A provider id (`rlft providers` lists them): check the rules that backend declares too.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Human-readable report, or JSON for scripts.",
)
def validate(
    data: Path,
    validation_path: Path | None,
    grader_path: Path | None,
    provider: str | None,
    output: str,
) -> None:
    """Check DATA, a JSONL dataset, and print every problem grouped by kind with line numbers.

    Exits 1 if there is any error, 0 if there are only warnings (or nothing).

    \b
    Examples:
      rlft validate tickets.jsonl
      rlft validate train.jsonl --validation valid.jsonl --provider azure --grader grader.json
    """
    from rlft.datasets import check_file

    grader = None
    if grader_path is not None:
        from rlft import graders

        grader = graders.load(grader_path)  # a bad grader is a UsageError: one line, exit 2
    report = check_file(data, provider=provider, grader=grader, validation_path=validation_path)
    if output == "json":
        click.echo(report.to_json())
    else:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(report)
    sys.exit(0 if report.ok else 1)
