"""``rlft grade`` and ``rlft grader compile|probe``: test a grader on your own samples.

Each command is a thin synchronous shell over the async engine (``anyio.run``). A bad grader or
input file prints one line naming the file, line and field, and exits 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from rlft.exceptions import RLFTError, UsageError

__all__ = ["grade", "grader"]

F = TypeVar("F", bound=Callable[..., Any])

_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)
_BUCKETS = (
    (0.0, "0"),
    (0.25, "(0, .25]"),
    (0.5, "(.25, .5]"),
    (0.75, "(.5, .75]"),
    (1.0, "(.75, 1]"),
)


def _clear_errors(fn: F) -> F:
    """Print rlft errors as one line (exit 2 for usage, 1 otherwise), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except RLFTError as exc:
            click.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line: any JSON value, one per line.

    Shares the dataset reader, so binary, UTF-16, Latin-1, deeply nested or lone-surrogate input
    gets the same located one-line error as ``rlft validate``.

    Raises:
        UsageError: The first line (or the file) that is not a JSON value, as
            ``file:line: message at field; fix``.
    """
    from rlft.datasets._reader import ParsedLine
    from rlft.datasets._reader import read_jsonl as read_lines

    rows: list[tuple[int, Any]] = []
    for event in read_lines(path, file=str(path)):
        if isinstance(event, ParsedLine):
            rows.append((event.line, event.value))
        elif event.severity == "error" and event.code != "empty-file":
            raise UsageError(_one_line(path, event))
    return rows


def _one_line(path: Path, problem: Any) -> str:
    where = ":".join(str(part) for part in (path, problem.line) if part is not None)
    what = problem.message
    if problem.code in ("invalid-json", "truncated-line"):
        column = f", column {problem.column}" if problem.column else ""
        what = f"not valid JSON ({what}{column})"
    field = f" at {problem.field}" if problem.field else ""
    return f"{where}: {what}{field}; {problem.fix}"


def _load_grader(path: Path) -> Any:
    from rlft.graders import load

    return load(path)


def _samples_and_items(
    samples_path: Path, items_path: Path | None
) -> tuple[list[Any], list[dict[str, Any]]]:
    samples: list[Any] = []
    inline_items: list[dict[str, Any] | None] = []
    for number, value in read_jsonl(samples_path):
        # A line is a sample (text, {"output_text": ...}, a chat message or completion), or
        # {"sample": ..., "item": {...}} carrying its own item.
        if isinstance(value, Mapping) and "sample" in value:
            samples.append(value["sample"])
            item = value.get("item")
            if item is not None and not isinstance(item, Mapping):
                raise UsageError(f"{samples_path}:{number}: field 'item' must be an object")
            inline_items.append(dict(item) if item is not None else None)
        else:
            samples.append(value)
            inline_items.append(None)
    if not samples:
        raise UsageError(f"{samples_path}: no samples (one JSON value per line)")
    if items_path is None:
        return samples, [item or {} for item in inline_items]
    rows = read_jsonl(items_path)
    for number, row in rows:
        if not isinstance(row, Mapping):
            raise UsageError(f"{items_path}:{number}: a dataset row must be a JSON object")
    if len(rows) != len(samples):
        raise UsageError(
            f"{samples_path} has {len(samples)} samples but {items_path} has {len(rows)} rows: "
            "line N of the samples is graded against row N of the items"
        )
    items = [{k: v for k, v in row.items() if k not in ("messages", "tools")} for _, row in rows]
    return samples, items


def _bucket(score: float) -> str:
    if score <= 0.0:
        return "0"
    for upper, label in _BUCKETS[1:]:
        if score <= upper:
            return label
    return "> 1"


def _remote_score(result: Any) -> float | None:
    if isinstance(result, int | float):
        return float(result)
    score = getattr(result, "score", None)
    if isinstance(score, int | float):
        return float(score)
    if isinstance(result, Mapping) and isinstance(result.get("reward"), int | float):
        return float(result["reward"])
    return None


async def _grade_remote(
    provider: str, grader: Any, samples: Sequence[Any], items: Sequence[Any]
) -> list[Any]:
    import rlft
    from rlft.graders._runtime.sample import normalize_sample

    results: list[Any] = []
    async with rlft.Client(provider=provider) as client:
        for sample, item in zip(samples, items, strict=True):
            text = normalize_sample(sample)["output_text"]
            results.append(await client.graders.run(grader, sample=text, item=item))
    return results


@click.command()
@click.argument("grader_file", type=_PATH)
@click.option(
    "--samples",
    "samples_path",
    type=_PATH,
    required=True,
    help='JSONL: one sample per line (text, {"output_text": ...}, a chat message, '
    'or {"sample": ..., "item": {...}}).',
)
@click.option(
    "--items",
    "items_path",
    type=_PATH,
    help="JSONL dataset rows; line N is the item for sample N (messages are ignored).",
)
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Grades in flight at once.",
)
@click.option(
    "--remote",
    "remote",
    metavar="PROVIDER",
    help="Also score each sample with PROVIDER's grader service, beside the local score.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.option("--strict", is_flag=True, help="Exit 1 if any sample failed to grade.")
@_clear_errors
def grade(
    grader_file: Path,
    samples_path: Path,
    items_path: Path | None,
    concurrency: int,
    remote: str | None,
    as_json: bool,
    strict: bool,
) -> None:
    """Grade samples with GRADER_FILE (.json/.yaml) on the local engine.

    Prints each sample's score, sub-scores and failure reasons, then a summary (mean,
    distribution, failures by kind). Exits 2 if the grader or an input file is invalid.

    \b
    Examples:
      rlft grade grader.yaml --samples outputs.jsonl --items data.jsonl
      rlft grade grader.json --samples outputs.jsonl --items data.jsonl --remote openai
    """
    from rlft.graders import grade_many

    grader_obj = _load_grader(grader_file)
    samples, items = _samples_and_items(samples_path, items_path)
    results = anyio.run(
        functools.partial(grade_many, grader_obj, samples, items, concurrency=concurrency)
    )
    remote_scores: list[float | None] | None = None
    if remote is not None:
        answers = anyio.run(_grade_remote, remote, grader_obj, samples, items)
        remote_scores = [_remote_score(answer) for answer in answers]
    failures: Counter[str] = Counter()
    for result in results:
        failures.update(result.errors)
    failed = sum(1 for result in results if result.errors)
    scores = [result.score for result in results]
    summary = {
        "grader": grader_obj.name,
        "samples": len(results),
        "mean": sum(scores) / len(scores),
        "min": min(scores),
        "max": max(scores),
        "failed": failed,
        "failures": dict(failures),
        "distribution": dict(Counter(_bucket(s) for s in scores)),
    }
    if remote_scores is not None:
        diffs = [abs(r - s) for r, s in zip(remote_scores, scores, strict=True) if r is not None]
        summary["remote"] = remote
        summary["remote_max_abs_diff"] = max(diffs) if diffs else None
    if as_json:
        for index, result in enumerate(results):
            row = {"index": index, **result.model_dump(mode="json", exclude={"sub_results"})}
            if remote_scores is not None:
                row["remote_score"] = remote_scores[index]
            click.echo(json.dumps(row))
        click.echo(json.dumps({"summary": summary}))
    else:
        _print_grades(results, remote_scores, summary, remote)
    if strict and failed:
        sys.exit(1)


def _print_grades(
    results: Sequence[Any],
    remote_scores: list[float | None] | None,
    summary: dict[str, Any],
    remote: str | None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"grader {summary['grader']!r}")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    if remote_scores is not None:
        table.add_column(f"{remote} score", justify="right")
    table.add_column("sub-scores")
    table.add_column("failure")
    for index, result in enumerate(results):
        subs = ", ".join(f"{k}={v:.3g}" for k, v in result.sub_scores.items())
        failure = f"{','.join(result.errors)}: {result.reason}" if result.errors else ""
        row = [str(index), f"{result.score:.4g}"]
        if remote_scores is not None:
            value = remote_scores[index]
            row.append("?" if value is None else f"{value:.4g}")
        row += [subs, failure[:200]]
        table.add_row(*row)
    console.print(table)
    dist = ", ".join(f"{k}: {v}" for k, v in sorted(summary["distribution"].items()))
    console.print(
        f"{summary['samples']} samples, mean {summary['mean']:.4f} "
        f"(min {summary['min']:.4g}, max {summary['max']:.4g}); distribution {dist}"
    )
    if summary["failed"]:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary["failures"].items()))
        console.print(f"[red]{summary['failed']} failed to grade[/red] ({kinds})")
    else:
        console.print("no grading failures")
    if "remote" in summary:
        console.print(f"largest |local - {remote}| difference: {summary['remote_max_abs_diff']}")


@click.group()
def grader() -> None:
    """Compile graders for a backend, and probe them for gameability."""


@grader.command("compile")
@click.argument("grader_file", type=_PATH)
@click.option(
    "--provider",
    "-p",
    "target",
    required=True,
    metavar="TARGET",
    help="A provider id (its declared grader format), or a format: openai, trl, lambda, neutral.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="bedrock: write the Lambda zip here.",
)
@_clear_errors
def compile_command(grader_file: Path, target: str, output: Path | None) -> None:
    """Compile GRADER_FILE for a backend and print the payload.

    openai/azure print the grader JSON; bedrock prints the Lambda package's handler, runtime,
    requirements and files (``-o grader.zip`` writes the zip); local prints the validated grader.
    """
    from rlft.graders import compile as compile_grader
    from rlft.graders.formats.lambda_ import LambdaPackage

    grader_obj = _load_grader(grader_file)
    payload = compile_grader(grader_obj, target)
    if isinstance(payload, LambdaPackage):
        info = {
            "handler": payload.handler,
            "runtime": payload.runtime,
            "requirements": list(payload.requirements),
            "bundled": list(payload.bundled),
            "judge": payload.judge,
            "sha256": payload.sha256,
            "size_bytes": len(payload.zip_bytes),
            "files": [f for f in payload.files if f.startswith(("rlft_", "nltk_data/"))],
        }
        if output is not None:
            info["written"] = str(payload.write(output))
        click.echo(json.dumps(info, indent=2))
    elif isinstance(payload, Mapping):
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    elif hasattr(payload, "to_dict"):
        click.echo(json.dumps(payload.to_dict(), indent=2, ensure_ascii=False))
    else:  # trl: a callable
        click.echo(f"{payload!r}: call as fn(prompts=..., completions=..., **columns)")


@grader.command("probe")
@click.argument("grader_file", type=_PATH)
@click.option(
    "--items",
    "items_path",
    type=_PATH,
    required=True,
    help="JSONL dataset rows (messages + item fields) to probe against.",
)
@click.option(
    "--threshold",
    default=0.5,
    show_default=True,
    type=float,
    help="A score above this counts as passing.",
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Probe at most this many rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_clear_errors
def probe_command(
    grader_file: Path, items_path: Path, threshold: float, limit: int, as_json: bool
) -> None:
    """Score adversarial outputs (empty, echoed prompt, every label, ...) against real items.

    Exits 1 if any adversarial output scores above the threshold: the grader is gameable.
    """
    from rlft.graders._probe import probe

    grader_obj = _load_grader(grader_file)
    rows = []
    for number, row in read_jsonl(items_path)[:limit]:
        if not isinstance(row, Mapping):
            raise UsageError(f"{items_path}:{number}: a dataset row must be a JSON object")
        rows.append(dict(row))
    if not rows:
        raise UsageError(f"{items_path}: no rows to probe")
    report = anyio.run(functools.partial(probe, grader_obj, rows, threshold=threshold))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "grader": report.grader,
                    "threshold": report.threshold,
                    "items": report.items,
                    "gameable": [f.kind for f in report.gameable],
                    "findings": [f.__dict__ for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        _print_probe(report)
    if report.gameable:
        sys.exit(1)


def _print_probe(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"gameability probe: {report.grader!r} on {report.items} items "
        f"(threshold {report.threshold:g})"
    )
    for column in ("output", "mean", "max", "passed", "verdict"):
        table.add_column(column)
    for finding in report.findings:
        verdict = "[red]GAMEABLE[/red]" if finding.gameable else "ok"
        table.add_row(
            finding.description,
            f"{finding.mean:.3g}",
            f"{finding.max:.3g}",
            f"{finding.passed}/{finding.total}",
            verdict,
        )
    console.print(table)
    for finding in report.gameable:
        console.print(
            f"[red]gameable[/red]: {finding.kind} ({finding.description}) scored up to "
            f"{finding.max:.3g} on {finding.passed}/{finding.total} items: {finding.hint}"
        )
    if not report.gameable:
        console.print("no adversarial output scored above the threshold")
