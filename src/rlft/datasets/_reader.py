"""Stream a JSONL file line by line, turning every kind of bad input into a located problem.

The reader never holds more than one line in memory, never raises for bad content, and reports
each bad line (not just the first), so a 50,000-row file costs one line's worth of memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from rlft._limits import MAX_DEPTH, deeper_than, find_problem_value
from rlft.datasets._report import Problem

__all__ = ["MAX_LINE_BYTES", "ParsedLine", "read_jsonl"]

# rlft's own guard, not a provider limit (none is documented): a single line this long is not a
# prompt, and refusing it keeps one bad line from taking the machine's memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
_SNIFF_BYTES = 8192
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the reverse: the only way a
# lone surrogate gets into a decoded UTF-8 line. A match is confirmed by walking the value.
_LONE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A line that parsed as JSON (any JSON value: the row checks judge its shape)."""

    line: int
    value: Any


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, but they are not JSON and the hosted validators refuse
    # them; raising here turns them into an ordinary invalid-json problem with a column.
    raise ValueError(f"{name} is not valid JSON (write null or a number)")


# One decoder for every line: json.loads with a keyword builds a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_json(text: str) -> Any:
    return _DECODER.decode(text)


def read_jsonl(
    path: Path, *, file: str, limit: int | None = None
) -> Iterator[ParsedLine | Problem]:
    """Yield each parsed line, or a ``Problem`` for a line (or file) that cannot be a row.

    Args:
        path: The JSONL file.
        file: The name problems carry (usually ``str(path)``).
        limit: Stop after this many parsed rows.
    """
    try:
        handle = path.open("rb")
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc
        yield _file_problem("unreadable-file", f"cannot open the file: {reason}", file)
        return
    with handle:
        try:
            yield from _read(handle, file=file, limit=limit)
        except OSError as exc:  # a directory, a vanished file, a read error mid-way
            yield _file_problem("unreadable-file", f"cannot read the file: {exc}", file)


def _file_problem(code: str, message: str, file: str) -> Problem:
    fixes = {
        "unreadable-file": "check the path and that you can read the file",
        "empty-file": 'add one JSON object per line, like {"messages": [...], "label": "..."}',
        "binary-file": "pass a UTF-8 JSONL text file (one JSON object per line)",
        "utf16-file": "re-save the file as UTF-8 (most editors: Save with encoding > UTF-8)",
    }
    return Problem(severity="error", code=code, message=message, fix=fixes[code], file=file)


def _read(handle: BinaryIO, *, file: str, limit: int | None) -> Iterator[ParsedLine | Problem]:
    head = handle.read(_SNIFF_BYTES)
    if head.startswith(_UTF16_BOMS):
        yield _file_problem("utf16-file", "the file is UTF-16 encoded, not UTF-8", file)
        return
    if b"\x00" in head:
        yield _file_problem(
            "binary-file",
            "the file looks binary (it has NUL bytes), or is UTF-16/UTF-32 without a BOM",
            file,
        )
        return
    handle.seek(0)
    number = rows = 0
    blank: list[int] = []
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            break
        number += 1
        if number == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]  # a UTF-8 BOM is harmless (Azure even asks for one)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            yield _too_long(handle, raw, number, file)
            continue
        ended = raw.endswith(b"\n")
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            blank.append(number)
            continue
        result = _parse(raw, number, file, last_without_newline=not ended)
        yield result
        if isinstance(result, ParsedLine):
            rows += 1
            if limit is not None and rows >= limit:
                return
    if rows == 0 and number - len(blank) == 0:
        message = "the file is empty" if number == 0 else "the file has only blank lines"
        yield _file_problem("empty-file", message, file)
        return
    for line in blank:
        yield Problem(
            severity="warning",
            code="blank-line",
            message="blank line (skipped)",
            fix="delete blank lines: some services reject them",
            file=file,
            line=line,
        )


def _too_long(handle: BinaryIO, raw: bytes, number: int, file: str) -> Problem:
    size = len(raw)
    while chunk := handle.readline(1024 * 1024):  # skip the rest without keeping it
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return Problem(
        severity="error",
        code="line-too-long",
        message=f"the line is {size / 1024 / 1024:,.1f} MiB; rlft refuses lines over "
        f"{MAX_LINE_BYTES // 1024 // 1024} MiB",
        fix="check the line is one row (one JSON object), not a whole file on one line",
        file=file,
        line=number,
    )


def _parse(
    raw: bytes, number: int, file: str, *, last_without_newline: bool
) -> ParsedLine | Problem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
        return Problem(
            severity="error",
            code="encoding",
            message=f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
            fix="re-save the file as UTF-8 (it may be Latin-1 or Windows-1252)",
            file=file,
            line=number,
            column=column,
        )
    try:
        value = _decode_json(text)
    except json.JSONDecodeError as exc:
        # Some messages end "starting at": finish the sentence with the column.
        detail = f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else exc.msg
        if last_without_newline and _looks_truncated(exc, text):
            return Problem(
                severity="error",
                code="truncated-line",
                message=f"the last line ends mid-row ({detail}); the file looks cut off",
                fix="complete or delete the last line (was the file copied or written fully?)",
                file=file,
                line=number,
                column=exc.colno,
            )
        return Problem(
            severity="error",
            code="invalid-json",
            message=detail,
            fix="make each line one complete JSON object (double quotes, no trailing commas)",
            file=file,
            line=number,
            column=exc.colno,
        )
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, or absurd nesting
        return Problem(
            severity="error",
            code="invalid-json",
            message=str(exc)
            if isinstance(exc, ValueError)
            else f"the JSON is nested too deeply (rlft allows {MAX_DEPTH} levels)",
            fix="make each line one complete JSON object (double quotes, no trailing commas)",
            file=file,
            line=number,
        )
    # Walk the value only when the text could hide a problem: cheap C-level scans first.
    deep = text.count("[") + text.count("{") > MAX_DEPTH and deeper_than(value)
    if deep or _LONE_ESCAPE.search(text):
        found = find_problem_value(value)
        if found is not None:
            return _value_problem(*found, file=file, line=number)
    return ParsedLine(number, value)


def _value_problem(kind: str, path: str, *, file: str, line: int) -> Problem:
    if kind == "too-deep":
        return Problem(
            severity="error",
            code="too-deep",
            message=f"the JSON nests more than {MAX_DEPTH} objects/arrays deep",
            fix=f"flatten the row: rlft refuses nesting over {MAX_DEPTH} levels",
            file=file,
            line=line,
            field=path,
        )
    return Problem(
        severity="error",
        code="lone-surrogate",
        message="a \\uD800-\\uDFFF escape stands alone, which is not valid Unicode text",
        fix="pair each high \\uD8xx-\\uDBxx escape with a low \\uDCxx-\\uDFxx one, or remove "
        "it (the text was probably cut in the middle of an emoji)",
        file=file,
        line=line,
        field=path,
    )


def _looks_truncated(exc: json.JSONDecodeError, text: str) -> bool:
    # The parser ran off the end of the text: the row started but never closed.
    return exc.pos >= len(text.rstrip()) or "Unterminated string" in exc.msg
