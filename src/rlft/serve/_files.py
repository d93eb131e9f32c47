"""Uploaded files: kept on disk beside the job store, checked by rlft's dataset validator."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from rlft.datasets import Dataset
from rlft.exceptions import DatasetValidationError
from rlft.serve._errors import ApiError

__all__ = ["FileRecord", "FileStore", "problem_line"]


@dataclass(frozen=True)
class FileRecord:
    """One uploaded file: OpenAI's file object plus the key that owns it."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    owner: str

    def wire(self) -> dict[str, Any]:
        """The OpenAI ``file`` object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


def problem_line(exc: DatasetValidationError, filename: str) -> tuple[str, str | None]:
    """The first blocking problem as one line naming the line and the field, and that field."""
    report = exc.report
    problems = list(report.errors) if report is not None else []
    if not problems:
        return f"{filename}: {exc}", None
    first = problems[0]
    where = f"{filename} line {first.line}" if first.line is not None else filename
    field = f", field {first.field}" if first.field else ""
    more = f" ({len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}{field}: {first.message} (fix: {first.fix}){more}", first.field


class FileStore:
    """Files in a folder: ``<id>.jsonl`` holds the content, ``<id>.json`` the file object."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _meta(self, file_id: str) -> Path:
        return self.folder / f"{file_id}.json"

    def content_path(self, file_id: str) -> Path:
        """Where a file's bytes are."""
        return self.folder / f"{file_id}.jsonl"

    async def add(self, *, content: bytes, filename: str, purpose: str, owner: str) -> FileRecord:
        """Validate and keep an upload; a bad file raises a 400 naming its line and field."""
        file_id = f"file-{secrets.token_hex(12)}"
        safe_name = Path(filename or "upload.jsonl").name[:200]
        record = FileRecord(
            id=file_id,
            bytes=len(content),
            created_at=int(time.time()),
            filename=safe_name,
            purpose=purpose,
            owner=owner,
        )

        def write() -> None:
            tmp = self.folder / f".{file_id}.tmp"
            tmp.write_bytes(content)
            try:
                Dataset.from_jsonl(tmp)
            except DatasetValidationError as exc:
                tmp.unlink(missing_ok=True)
                message, field = problem_line(exc, safe_name)
                raise ApiError(400, message, param=field or "file", code="invalid_file") from None
            os.replace(tmp, self.content_path(file_id))
            self._meta(file_id).write_text(json.dumps(asdict(record)), encoding="utf-8")

        await anyio.to_thread.run_sync(write)
        return record

    def get(self, file_id: str) -> FileRecord | None:
        """The file object, or ``None``."""
        if not file_id.startswith("file-") or "/" in file_id or "\\" in file_id:
            return None
        try:
            data = json.loads(self._meta(file_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return FileRecord(**data)

    def all(self) -> list[FileRecord]:
        """Every file, newest first."""
        found = [self.get(p.stem) for p in self.folder.glob("file-*.json")]
        files = [f for f in found if f is not None]
        return sorted(files, key=lambda f: (f.created_at, f.id), reverse=True)

    def delete(self, file_id: str) -> None:
        """Forget a file."""
        self._meta(file_id).unlink(missing_ok=True)
        self.content_path(file_id).unlink(missing_ok=True)
