"""``rlft validate``: check a dataset (and its validation set) before anything is uploaded."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["validate"]

_TARGETS = ("openai", "azure", "bedrock", "local")


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
    metavar="TARGET",
    help=f"Check the backend's rules too: {', '.join(_TARGETS)}.",
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
    target = _dataset_target(provider)
    report = check_file(data, provider=target, grader=grader, validation_path=validation_path)
    if output == "json":
        click.echo(report.to_json())
    else:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(report)
    sys.exit(0 if report.ok else 1)


def _dataset_target(provider: str | None) -> str | None:
    """A target name as is; a plugin provider's name becomes its declared dataset target."""
    if provider is None or provider in _TARGETS:
        return provider
    from rlft._client import Client
    from rlft.exceptions import RLFTError

    try:
        for spec in Client().provider_specs():
            if spec.name == provider:
                return spec.load().capabilities.dataset_target
    except (RLFTError, ImportError):
        pass  # unresolvable: check_file warns that only the generic rules ran
    return provider
