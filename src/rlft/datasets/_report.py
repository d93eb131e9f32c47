"""Problems and the validation report: every problem at once, grouped by kind for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from rlft.exceptions import DatasetValidationError

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

__all__ = ["Problem", "Severity", "ValidationReport", "compact_lines"]

Severity = Literal["error", "warning"]

# How many lines a group lists one by one (with their own message) before it summarises the rest.
_DETAILED = 8
# How many line numbers a compact list names before "and N more".
_COMPACT = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a dataset, located as precisely as the input allows.

    Attributes:
        severity: ``"error"`` blocks a job; ``"warning"`` is worth a look but does not.
        code: A stable kebab-case kind (``"invalid-json"``), the same for every instance.
        message: What is wrong with this row, in one sentence.
        fix: What to do about it, in one line.
        file: The file (or source name) the row came from, if any.
        line: The 1-based line in ``file``, if the row came from a file.
        column: The 1-based column within the line, when the problem has one (JSON syntax).
        field: Where in the row (``"messages[2].content"``, ``"item.label"``), if it is a field.
        row: The 0-based index of the row in the dataset, if the line became a row.
    """

    severity: Severity
    code: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    row: int | None = None

    @property
    def location(self) -> str:
        """``line 7, column 3``, ``records[6]``, or ``""`` for a whole-file problem."""
        if self.line is not None:
            where = f"line {self.line}"
            return f"{where}, column {self.column}" if self.column is not None else where
        if self.row is not None:
            return f"records[{self.row}]"
        return ""

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        if self.line is None and self.row is not None:
            where = f"{where} records[{self.row}]".lstrip()
        head = f"{where}: " if where else ""
        field = f" [{self.field}]" if self.field else ""
        return f"{head}{self.severity} {self.code}{field}: {self.message} (fix: {self.fix})"


def compact_lines(numbers: Sequence[int], *, limit: int = _COMPACT, noun: str = "lines") -> str:
    """Name many line numbers briefly: ``lines 3, 7, 9 and 412 more``."""
    if not numbers:
        return ""
    singular = noun[:-1] if noun.endswith("s") else noun
    if len(numbers) == 1:
        return f"{singular} {numbers[0]}"
    shown = ", ".join(str(n) for n in numbers[:limit])
    rest = len(numbers) - limit
    if rest > 0:
        return f"{noun} {shown} and {rest} more"
    head, _, last = shown.rpartition(", ")
    return f"{noun} {head} and {last}"


@dataclass(frozen=True, slots=True)
class _Group:
    file: str | None
    severity: Severity
    code: str
    fix: str
    problems: tuple[Problem, ...]


class ValidationReport:
    """Every problem found in one or more datasets, with counts; render it or raise it.

    ``str(report)`` is a plain-text rendering grouped by problem kind, with line numbers and one
    fix per kind; ``rich`` renders the same with colour (``console.print(report)``).
    """

    __slots__ = ("_problems", "_rows")

    def __init__(self, *, problems: Iterable[Problem] = (), rows: dict[str, int] | None = None):
        self._problems = tuple(problems)
        self._rows = dict(rows or {})

    @property
    def problems(self) -> tuple[Problem, ...]:
        """All problems, errors and warnings, in the order they were found."""
        return self._problems

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that block a job."""
        return tuple(p for p in self._problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The problems that do not block a job."""
        return tuple(p for p in self._problems if p.severity == "warning")

    @property
    def rows(self) -> dict[str, int]:
        """How many rows were checked, per file or source name."""
        return dict(self._rows)

    @property
    def ok(self) -> bool:
        """``True`` when there is no error (warnings allowed)."""
        return not any(p.severity == "error" for p in self._problems)

    def codes(self) -> set[str]:
        """The distinct problem codes present (handy in tests and scripts)."""
        return {p.code for p in self._problems}

    def merge(self, other: ValidationReport) -> ValidationReport:
        """A report holding this report's problems followed by ``other``'s."""
        rows = dict(self._rows)
        for name, count in other._rows.items():
            rows[name] = rows.get(name, 0) + count
        return ValidationReport(problems=(*self._problems, *other._problems), rows=rows)

    def raise_for_errors(self) -> Self:
        """Raise ``DatasetValidationError`` carrying this report if it has errors; else return it.

        Raises:
            DatasetValidationError: With ``report=self`` and a message summarising the errors.
        """
        if not self.ok:
            raise DatasetValidationError(self.summary(limit=20), report=self)
        return self

    def summary(self, *, limit: int | None = None) -> str:
        """A headline plus the grouped text rendering, cut after ``limit`` lines if given."""
        lines = self.to_text().splitlines()
        if limit is not None and len(lines) > limit:
            lines = [*lines[:limit], f"... ({len(lines) - limit} more lines; print the report)"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``ok``, counts, and every problem as a dict."""
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "rows": self.rows,
            "problems": [asdict(p) for p in self._problems],
        }

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def groups(self) -> list[_Group]:
        """Problems grouped by file, severity, code and fix; errors first, then by first line."""
        buckets: dict[tuple[str | None, Severity, str, str], list[Problem]] = {}
        for problem in self._problems:
            key = (problem.file, problem.severity, problem.code, problem.fix)
            buckets.setdefault(key, []).append(problem)
        groups = [_Group(k[0], k[1], k[2], k[3], tuple(v)) for k, v in buckets.items()]
        files = list(dict.fromkeys(g.file for g in groups))
        return sorted(groups, key=lambda g: (files.index(g.file), g.severity != "error"))

    def headline(self) -> str:
        """``2 errors, 1 warning in 3 rows of tickets.jsonl`` (or ``no problems ...``)."""
        errors, warnings = len(self.errors), len(self.warnings)
        parts = [_plural(errors, "error"), _plural(warnings, "warning")]
        counts = "; ".join(f"{_plural(n, 'row')} in {name}" for name, n in self._rows.items())
        verdict = ", ".join(parts) if errors or warnings else "no problems"
        return f"{verdict} ({counts or 'nothing checked'})"

    def to_text(self) -> str:
        """The plain-text rendering: a headline, then one block per kind with its fix."""
        out = [self.headline()]
        current: object = object()
        for group in self.groups():
            if group.file != current:
                current = group.file
                out.append("")
                out.append(f"{group.file or '<records>'}:")
            out.extend(_group_lines(group))
        return "\n".join(out)

    def format(self) -> str:
        """The plain-text rendering (``to_text()``), for messages and logs."""
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<ValidationReport {self.headline()}>"

    def __iter__(self) -> Iterator[Problem]:
        return iter(self._problems)

    def __len__(self) -> int:
        return len(self._problems)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        style = "bold red" if not self.ok else ("yellow" if self._problems else "green")
        yield Text(self.headline(), style=style)
        current: object = object()
        for group in self.groups():
            if group.file != current:
                current = group.file
                yield Text("")
                yield Text(f"{group.file or '<records>'}:", style="bold")
            colour = "red" if group.severity == "error" else "yellow"
            for index, line in enumerate(_group_lines(group)):
                text = Text(line)
                if index == 0:
                    text.stylize(colour, 0, len(line))
                elif line.lstrip().startswith("fix:"):
                    text.stylize("cyan")
                yield text


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _group_lines(group: _Group) -> list[str]:
    problems = group.problems
    count = len(problems)
    noun = "row" if all(p.location for p in problems) else "time"
    head = f"  {group.severity} {group.code}" + (f" ({_plural(count, noun)})" if count > 1 else "")
    messages = {p.message for p in problems}
    located = [p for p in problems if p.location]
    lines = [head]
    if count == 1:
        where = f"{problems[0].location}: " if problems[0].location else ""
        lines.append(f"    {where}{problems[0].message}")
    elif len(messages) == 1:
        # One message for the whole group (say, a missing grader field): say it once, then name the
        # rows compactly instead of repeating it on thousands of lines.
        lines.append(f"    {problems[0].message}")
        if located:
            lines.append(f"    at {_compact_locations(located)}")
    else:
        for problem in problems[:_DETAILED]:
            where = f"{problem.location}: " if problem.location else ""
            lines.append(f"    {where}{problem.message}")
        if count > _DETAILED:
            rest = [p for p in problems[_DETAILED:] if p.location]
            more = f": {_compact_locations(rest)}" if rest else ""
            lines.append(f"    ... and {count - _DETAILED:,} more{more}")
    lines.append(f"    fix: {group.fix}")
    return lines


def _compact_locations(problems: Sequence[Problem]) -> str:
    lines = [p.line for p in problems if p.line is not None]
    rows = [p.row for p in problems if p.line is None and p.row is not None]
    parts = []
    if lines:
        parts.append(compact_lines(list(dict.fromkeys(lines))))
    if rows:
        parts.append(compact_lines(list(dict.fromkeys(rows)), noun="records"))
    return "; ".join(parts)
