"""Datasets: load, validate against backend rules and graders, and render per backend."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlft.exceptions import DatasetValidationError

__all__ = ["Dataset", "Example"]

RESERVED = ("messages", "tools")


@dataclass(frozen=True, kw_only=True)
class Example:
    """One row: the prompt messages, optional tools, and the item fields graders read."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    item: dict[str, Any]
    line: int | None = None


def _canonical(row: Mapping[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Dataset:
    """An immutable sequence of examples."""

    def __init__(self, *, rows: Iterable[Mapping[str, Any]], lines: Iterable[int | None] | None = None,
                 path: Path | None = None) -> None:
        self._rows = tuple(dict(r) for r in rows)
        self._lines = tuple(lines) if lines is not None else (None,) * len(self._rows)
        self._path = path

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, source: str | None = None) -> Dataset:
        return cls(rows=records)

    @classmethod
    def from_jsonl(cls, path: str | Path, *, limit: int | None = None) -> Dataset:
        path = Path(path)
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        with path.open("r", encoding="utf-8-sig") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DatasetValidationError(f"{path}:{number}: invalid JSON: {exc}") from exc
                rows.append(row)
                lines.append(number)
                if limit is not None and len(rows) >= limit:
                    break
        return cls(rows=rows, lines=lines, path=path)

    @property
    def path(self) -> Path | None:
        return self._path

    def __len__(self) -> int:
        return len(self._rows)

    def _example(self, index: int) -> Example:
        row = self._rows[index]
        return Example(messages=row.get("messages", []), tools=row.get("tools"),
                       item={k: v for k, v in row.items() if k not in RESERVED},
                       line=self._lines[index])

    def __getitem__(self, index: int) -> Example:
        return self._example(index)

    def __iter__(self) -> Iterator[Example]:
        for i in range(len(self._rows)):
            yield self._example(i)

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for row in self._rows:
            digest.update(_canonical(row))
            digest.update(b"\n")
        return digest.hexdigest()
