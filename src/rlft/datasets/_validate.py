"""Validation entry points: a file on disk (streamed) or a loaded Dataset, with its validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlft.datasets._checks import DatasetRole, ItemReferenceLike, RowChecker
from rlft.datasets._reader import read_jsonl
from rlft.datasets._report import Problem, ValidationReport
from rlft.datasets._rules import DatasetRules
from rlft.exceptions import GraderValidationError

if TYPE_CHECKING:
    from rlft.datasets._dataset import Dataset
    from rlft.graders import Grader

__all__ = ["check_dataset", "check_file"]


def check_file(
    path: str | os.PathLike[str],
    *,
    provider: str | None = None,
    grader: Grader | None = None,
    validation_path: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Check a JSONL file (and its validation file) without loading it: every problem, streamed.

    Never raises for bad content: unreadable, empty, binary and malformed files are problems in
    the report. Memory stays flat in the file size (a line at a time, plus 16 bytes per row).

    Args:
        path: The training file.
        provider: A provider id (``rlft providers`` lists them): its declared dataset rules
            apply too. ``None``: the generic chat-format checks only.
        grader: Every ``{{ item.x }}`` it reads must exist in every row.
        validation_path: The validation file, checked with the validation-set rules.

    Returns:
        The report; ``report.ok`` is ``False`` if anything would block a job.
    """
    rules, notes = _resolve(provider, file=str(path))
    references, grader_problems = _references(grader)
    report = _check_stream(Path(path), rules=rules, role="train", references=references)
    if validation_path is not None:
        report = report.merge(
            _check_stream(
                Path(validation_path), rules=rules, role="validation", references=references
            )
        )
    elif rules is not None:
        notes.extend(_validation_absent(rules, file=str(path)))
    return ValidationReport(problems=[*notes, *grader_problems]).merge(report)


def check_dataset(
    dataset: Dataset,
    *,
    provider: str | None = None,
    grader: Grader | None = None,
    validation: Dataset | None = None,
    role: DatasetRole = "train",
) -> ValidationReport:
    """``Dataset.validate``: the same checks as ``check_file``, over rows already loaded."""
    name = dataset.source or "<records>"
    rules, notes = _resolve(provider, file=name)
    references, grader_problems = _references(grader)
    report = _check_rows(dataset, rules=rules, role=role, references=references)
    if validation is not None:
        report = report.merge(
            _check_rows(validation, rules=rules, role="validation", references=references)
        )
    elif rules is not None and role == "train":
        notes.extend(_validation_absent(rules, file=name))
    return ValidationReport(problems=[*notes, *grader_problems]).merge(report)


def _check_stream(
    path: Path, *, rules: DatasetRules | None, role: DatasetRole, references: list[Any]
) -> ValidationReport:
    name = str(path)
    checker = RowChecker(
        file=name, rules=rules, role=role, references=references, base_dir=path.parent
    )
    rows = 0
    for event in read_jsonl(path, file=name):
        if isinstance(event, Problem):
            checker.add(event)
        elif checker.check(event.value, line=event.line, row=rows):
            rows += 1
    return checker.finish()


def _check_rows(
    dataset: Dataset, *, rules: DatasetRules | None, role: DatasetRole, references: list[Any]
) -> ValidationReport:
    name = dataset.source or "<records>"
    checker = RowChecker(file=name, rules=rules, role=role, references=references)
    # A split or slice keeps its rows' file lines; records have none and are named by index.
    rows = zip(dataset.raw_rows(), dataset._lines, strict=True)
    for index, (row, line) in enumerate(rows):
        checker.check(json.loads(row), line=line, row=index)
    return checker.finish()


def _resolve(provider: str | None, *, file: str) -> tuple[DatasetRules | None, list[Problem]]:
    if provider is None:
        return None, []
    from rlft._plugins import find_provider, known_providers

    spec = find_provider(provider)
    if spec is not None:
        return spec.dataset, []  # a backend that declares no rules gets the generic checks
    known = ", ".join(known_providers())
    return None, [
        Problem(
            severity="warning",
            code="unknown-provider",
            message=f"no provider {provider!r} is installed: only the generic checks ran",
            fix=f"name an installed provider id ({known}); `rlft providers` lists them",
            file=file,
        )
    ]


def _validation_absent(rules: DatasetRules, *, file: str) -> list[Problem]:
    if rules.validation == "optional":
        return []
    required = rules.validation == "required"
    why = "" if required else " (its guide says RFT takes a training and a validation file)"
    return [
        Problem(
            severity="error" if required else "warning",
            code="validation-required",
            message=f"{rules.label} needs a validation set{why}, and none was given",
            fix="pass a validation set: --validation FILE, validation=..., or ds.split(...)",
            file=file,
        )
    ]


def _references(grader: Grader | None) -> tuple[list[ItemReferenceLike], list[Problem]]:
    if grader is None:
        return [], []
    from rlft.graders import item_references

    try:
        return list(item_references(grader)), []
    except GraderValidationError as exc:
        return [], [
            Problem(
                severity="error",
                code="grader-invalid",
                message=f"cannot read the grader's templates: {exc}",
                fix="fix the grader template (test it with grader.grade(...))",
                field=exc.path or None,
            )
        ]
