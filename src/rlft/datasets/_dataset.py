"""Dataset and Example: immutable rows of prompt messages plus the item fields graders read."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from rlft.datasets._checks import RESERVED, DatasetRole, RowChecker, canonical
from rlft.datasets._reader import read_jsonl
from rlft.datasets._report import Problem, ValidationReport, compact_lines
from rlft.exceptions import DatasetValidationError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    from rlft.graders import Grader

__all__ = ["Dataset", "Example"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    """One row: the prompt, optional tools, and the item fields graders read as ``item.*``.

    Each access builds a fresh ``Example``, so changing its lists or dicts never changes the
    dataset.

    Attributes:
        messages: The prompt as chat messages (``{"role": ..., "content": ...}`` dicts).
        tools: The row's tool definitions, or ``None``.
        item: Every other key of the row (OpenAI reserves only ``messages`` and ``tools``).
        line: The 1-based line in the source file, or ``None`` for rows not read from a file.
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    item: dict[str, Any]
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as written in JSONL: ``messages``, ``tools`` if any, then the item fields."""
        row: dict[str, Any] = {"messages": self.messages}
        if self.tools is not None:
            row["tools"] = self.tools
        return {**row, **self.item}


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _compact(value: Any) -> bytes:
    return _COMPACT.encode(value).encode()


def _stored(row: dict[str, Any]) -> bytes:
    """A row as kept and uploaded: ``messages``, ``tools``, then the item fields in file order."""
    head = {key: row[key] for key in RESERVED if key in row}
    return _compact({**head, **row})


class Dataset:
    """An immutable, ordered set of rows: prompt ``messages`` plus item fields.

    Build one with ``from_jsonl``, ``from_records`` or ``from_hf``; each checks the generic row
    rules and raises ``DatasetValidationError`` listing every problem. Backend rules and grader
    fields are checked by ``validate``. Rows are kept as compact JSON, so a dataset costs about its
    file size in memory and every ``Example`` handed out is a private copy.
    """

    __slots__ = ("_digest", "_lines", "_path", "_rows", "_source")

    _rows: tuple[bytes, ...]
    _lines: tuple[int | None, ...]
    _path: Path | None
    _source: str | None
    _digest: str | None

    def __init__(self) -> None:
        raise TypeError(
            "build a Dataset with Dataset.from_jsonl(path), Dataset.from_records(rows) or "
            "Dataset.from_hf(hf_dataset)"
        )

    @classmethod
    def _create(
        cls,
        rows: Sequence[bytes],
        lines: Sequence[int | None],
        *,
        path: Path | None,
        source: str | None,
        digest: str | None = None,
    ) -> Dataset:
        self = object.__new__(cls)
        self._rows = tuple(rows)
        self._lines = tuple(lines)
        self._path = path
        self._source = source
        self._digest = digest
        return self

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def from_jsonl(
        cls,
        path: str | os.PathLike[str],
        *,
        limit: int | None = None,
        image_root: str | os.PathLike[str] | None = None,
    ) -> Dataset:
        """Load a JSONL file: one JSON object per line, ``{"messages": [...], **item_fields}``.

        The file is streamed. A UTF-8 BOM and CRLF line endings are accepted; blank lines are
        skipped (with a warning in ``check_file``).

        Image parts are rewritten to the one image shape (``rlft.datasets.images``); local
        image files, ``{"type": "input_image", "path": "images/a.png"}``, are read relative to
        the file and inlined as data URLs.

        Args:
            path: The file.
            limit: Read at most this many rows (from the top).
            image_root: The folder local images may be read from (default: the file's folder;
                a path outside it is an error, so a dataset cannot pull in other files).

        Raises:
            DatasetValidationError: The file has structural problems (bad JSON or encoding, rows
                that are not objects, bad ``messages``). ``error.report`` lists every one, with
                line numbers; ``rlft validate FILE`` prints the same.
        """
        file_path = Path(path)
        name = str(file_path)
        checker = RowChecker(
            file=name,
            base_dir=file_path.parent,
            image_root=Path(image_root) if image_root is not None else None,
        )
        rows: list[bytes] = []
        lines: list[int | None] = []
        digest = hashlib.sha256()
        for event in read_jsonl(file_path, file=name, limit=limit):
            if isinstance(event, Problem):
                if event.severity == "error":
                    checker.add(event)
                continue
            data = canonical(event.value) if isinstance(event.value, dict) else None
            if checker.check(event.value, line=event.line, row=len(rows), canonical_bytes=data):
                assert checker.row is not None  # the row, its image parts rewritten
                digest.update(checker.row_bytes + b"\n")
                rows.append(_stored(checker.row))
                lines.append(event.line)
        report = checker.finish()
        _raise_for_errors(report, name)
        return cls._create(rows, lines, path=file_path, source=name, digest=digest.hexdigest())

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        source: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> Dataset:
        """Build a dataset from dicts shaped like JSONL rows.

        Values are normalised through JSON (tuples become lists); anything JSON cannot hold
        (a ``datetime``, ``NaN``) is an error. Image parts are rewritten to the one image shape
        (``rlft.datasets.images``): local files are read and inlined as data URLs.

        Args:
            records: The rows, ``{"messages": [...], **item_fields}``.
            source: A name for reports (``"tickets.jsonl"``, ``"my-db-export"``).
            base_dir: Where image parts' relative paths are resolved, and the folder they
                must lie in (default: the working directory).

        Raises:
            DatasetValidationError: Listing every structural problem by ``records[i]``.
        """
        checker = RowChecker(
            file=source or "<records>", base_dir=Path(base_dir) if base_dir is not None else None
        )
        rows: list[bytes] = []
        digest = hashlib.sha256()
        for index, record in enumerate(records):
            try:
                value = json.loads(_compact(record))
            except (TypeError, ValueError) as exc:
                checker.add(_not_json(exc, source, index))
                continue
            data = canonical(value) if isinstance(value, dict) else None
            if checker.check(value, line=None, row=index, canonical_bytes=data):
                assert checker.row is not None
                digest.update(checker.row_bytes + b"\n")
                rows.append(_stored(checker.row))
        report = checker.finish()
        _raise_for_errors(report, source or "records")
        return cls._create(
            rows, [None] * len(rows), path=None, source=source, digest=digest.hexdigest()
        )

    @classmethod
    def from_hf(cls, hf_dataset: Any, *, source: str | None = None) -> Dataset:
        """Build a dataset from a Hugging Face ``datasets.Dataset`` (needs ``rlft[hf]``).

        Arrow stores messages as structs with one shared set of keys, so a message without
        ``name`` comes back with ``name: None``; those ``None`` keys are dropped again, as is a
        ``tools`` column that is ``None`` for a row.

        Images (``datasets.Image`` columns, PIL images) are inlined as PNG data URLs. As in
        TRL's vision datasets, ``{"type": "image"}`` placeholders in message content take the
        row's ``images`` column (a list) or ``image`` column, in order; that column is then
        dropped. Image columns no placeholder uses stay item fields (data URLs), which graders
        read as ``{{ item.image }}``.

        Args:
            hf_dataset: A ``datasets.Dataset`` (pick a split from a ``DatasetDict`` first).
            source: A name for reports; defaults to the dataset's builder name.

        Raises:
            MissingDependencyError: ``datasets`` is not installed.
            UsageError: ``hf_dataset`` is a ``DatasetDict``.
            DatasetValidationError: As ``from_records``.
        """
        try:
            import datasets
        except ImportError as exc:
            raise MissingDependencyError("Dataset.from_hf", package="datasets", extra="hf") from exc
        if isinstance(hf_dataset, datasets.DatasetDict):
            splits = ", ".join(repr(s) for s in hf_dataset)
            raise UsageError(f"pass one split of the DatasetDict, e.g. ds['train'] (has {splits})")
        name = source or getattr(getattr(hf_dataset, "info", None), "builder_name", None)
        return cls.from_records((_from_arrow(row) for row in hf_dataset), source=name or "<hf>")

    # --- the sequence -------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file the rows were read from, or ``None`` (records, splits, slices)."""
        return self._path

    @property
    def source(self) -> str | None:
        """The name reports use: the file, the ``source=`` given, or ``None``."""
        return self._source

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) over the rows' canonical JSON, in order.

        Key order, whitespace, escapes and line endings do not change it; any change of a value,
        a row or the row order does. Uploads are keyed by it.
        """
        if self._digest is None:
            digest = hashlib.sha256()
            for row in self._rows:
                digest.update(canonical(json.loads(row)) + b"\n")
            self._digest = digest.hexdigest()
        return self._digest

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Example: ...
    @overload
    def __getitem__(self, index: slice) -> Dataset: ...
    def __getitem__(self, index: int | slice) -> Example | Dataset:
        if isinstance(index, slice):
            return self._subset(range(len(self._rows))[index])
        return self._example(self._rows[index], self._lines[index])

    def __iter__(self) -> Iterator[Example]:
        for row, line in zip(self._rows, self._lines, strict=True):
            yield self._example(row, line)

    @staticmethod
    def _example(row: bytes, line: int | None) -> Example:
        item = json.loads(row)
        messages = item.pop("messages")
        tools = item.pop("tools", None)
        return Example(messages=messages, tools=tools, item=item, line=line)

    def _subset(self, indices: Iterable[int]) -> Dataset:
        picked = list(indices)
        return Dataset._create(
            [self._rows[i] for i in picked],
            [self._lines[i] for i in picked],
            path=None,
            source=self._source,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return self._rows == other._rows or self.content_hash == other.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __repr__(self) -> str:
        source = f"{self._source!r}, " if self._source else ""
        return f"Dataset({source}rows={len(self)}, content_hash={self.content_hash[:12]!r})"

    def raw_rows(self) -> tuple[bytes, ...]:
        """Each row as compact UTF-8 JSON (no newline): ``messages``, ``tools``, item fields."""
        return self._rows

    # --- operations ---------------------------------------------------------------------------

    def split(
        self, *, validation: float | int, seed: int, stratify: str | None = None
    ) -> tuple[Dataset, Dataset]:
        """Split into (train, validation), deterministically for a given seed.

        Rows keep their original order within each part.

        Args:
            validation: A fraction in (0, 1) of the rows, or a row count.
            seed: The shuffle seed; the same seed gives the same split.
            stratify: An item field: each of its values gets the same share in both parts
                (largest-remainder rounding), so validation matches training's distribution.

        Raises:
            UsageError: ``validation`` leaves either part empty, or is out of range.
            DatasetValidationError: Some rows lack the ``stratify`` field (named by line).
        """
        total = len(self)
        count = _validation_count(validation, total)
        rng = random.Random(seed)
        if stratify is None:
            order = list(range(total))
            rng.shuffle(order)
            chosen = set(order[:count])
        else:
            chosen = self._stratified(stratify, count, rng)
        train = self._subset(i for i in range(total) if i not in chosen)
        return train, self._subset(sorted(chosen))

    def _stratified(self, field: str, count: int, rng: random.Random) -> set[int]:
        groups: dict[str, list[int]] = {}
        missing: list[Problem] = []
        for index, example in enumerate(self):
            if field not in example.item:
                missing.append(
                    Problem(
                        severity="error",
                        code="missing-item-field",
                        message=f'split(stratify="{field}") needs the field, and the row lacks it',
                        fix=f'add "{field}" to every row, or stratify on another field',
                        file=self._source,
                        line=example.line,
                        field=f"item.{field}",
                        row=index,
                    )
                )
                continue
            key = canonical(example.item[field]).decode()
            groups.setdefault(key, []).append(index)
        if missing:
            report = ValidationReport(
                problems=missing, rows={self._source or "<records>": len(self)}
            )
            where = compact_lines([p.line if p.line is not None else p.row or 0 for p in missing])
            raise DatasetValidationError(
                f"cannot stratify on {field!r}: {len(missing)} rows lack it ({where})",
                report=report,
            )
        total = len(self)
        keys = sorted(groups)
        shares = {k: count * len(groups[k]) / total for k in keys}
        quota = {k: math.floor(shares[k]) for k in keys}
        # Largest remainder: the rows floor() left over go to the groups it shortchanged most.
        left = count - sum(quota.values())
        for key in sorted(keys, key=lambda k: (-(shares[k] - quota[k]), k))[:left]:
            quota[key] += 1
        chosen: set[int] = set()
        for key in keys:
            members = list(groups[key])
            rng.shuffle(members)
            chosen.update(members[: quota[key]])
        return chosen

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write the rows as UTF-8 JSONL (LF, no BOM), atomically. Returns the path.

        Each row is compact JSON with ``messages`` (and ``tools``) first, then the item fields in
        their original order.
        """
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                for row in self._rows:
                    handle.write(row + b"\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def validate(
        self,
        *,
        provider: str | None = None,
        grader: Grader | None = None,
        validation: Dataset | None = None,
        role: DatasetRole = "train",
    ) -> ValidationReport:
        """Check the rows against a backend's rules and a grader's ``item.*`` references.

        Never raises for bad rows: read the report, or call ``report.raise_for_errors()``.

        Args:
            provider: A provider id (``rlft providers`` lists them): the rules that backend
                declares apply too. Unknown: generic rules, a warning.
            grader: Every ``{{ item.x }}`` it reads must exist in every row.
            validation: The validation set, checked with the validation-set rules; a backend
                that requires one reports its absence.
            role: ``"validation"`` to check this dataset as a validation set.
        """
        from rlft.datasets._validate import check_dataset

        return check_dataset(
            self, provider=provider, grader=grader, validation=validation, role=role
        )


def _validation_count(validation: float | int, total: int) -> int:
    if isinstance(validation, bool) or not isinstance(validation, int | float):
        raise UsageError(f"split(validation=...) takes a fraction or a count, not {validation!r}")
    if isinstance(validation, float):
        if not 0.0 < validation < 1.0:
            raise UsageError(f"split(validation={validation}) must be a fraction in (0, 1)")
        count = round(total * validation)
    else:
        count = validation
    if not 0 < count < total:
        raise UsageError(
            f"split(validation={validation!r}) of {total} rows leaves {count} validation and "
            f"{total - count} training rows; both parts need at least one row"
        )
    return count


def _not_json(exc: Exception, source: str | None, index: int) -> Problem:
    return Problem(
        severity="error",
        code="not-json",
        message=f"the record cannot be written as JSON ({exc})",
        fix="use only JSON values: str, int, float (not NaN), bool, None, list, dict",
        file=source or "<records>",
        row=index,
    )


def _raise_for_errors(report: ValidationReport, name: str) -> None:
    if report.ok:
        return
    errors = report.errors
    first = errors[0]
    raise DatasetValidationError(
        f"{name}: {len(errors):,} error{'s' if len(errors) != 1 else ''} "
        f"(first: {first.location or 'file'}: {first.message}); every problem is in "
        f"error.report\n{report.summary(limit=20)}",
        report=report,
    )


def _from_arrow(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: _inline_images(value) for key, value in row.items()}
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_drop_nones(m) for m in messages]
        _fill_placeholders(out)
    if "tools" in out and out["tools"] is None:
        del out["tools"]
    return out


def _inline_images(value: Any) -> Any:
    """PIL images (``datasets.Image`` columns) as PNG data URLs, in lists too."""
    if isinstance(value, list):
        return [_inline_images(v) for v in value]
    if type(value).__module__.split(".")[0] == "PIL":
        from rlft.datasets.images import encode_image

        return encode_image(value)
    return value


def _fill_placeholders(row: dict[str, Any]) -> None:
    """TRL's vision rows: ``{"type": "image"}`` parts take the ``images``/``image`` column."""
    slots = [
        (message["content"], index)
        for message in row["messages"]
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for index, part in enumerate(message["content"])
        if isinstance(part, dict) and part.get("type") == "image"
    ]
    if not slots:
        return
    column = "images" if "images" in row else "image"
    images = row.get(column)
    images = images if isinstance(images, list) else [images]
    for (content, index), url in zip(slots, images, strict=False):
        if isinstance(url, str):
            content[index] = {"type": "image_url", "image_url": {"url": url}}
    if len(images) == len(slots):
        row.pop(column, None)


def _drop_nones(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    clean = {k: v for k, v in message.items() if v is not None}
    content = clean.get("content")
    if isinstance(content, list):
        clean["content"] = [
            {k: v for k, v in p.items() if v is not None} if isinstance(p, dict) else p
            for p in content
        ]
    return clean
