"""Every secret value rlft holds, in one process-wide registry, and the one function that hides it.

Secrets are registered where rlft resolves them: provider settings (each ``SecretStr``), Entra ID
bearer tokens, the AWS secret key and session token of boto3's credential chain. ``redact`` then
replaces them, wherever they appear, at the few places text leaves rlft:

- ``RLFTError`` construction: its message, its attributes, and the exception being handled
  (which becomes ``__context__``/``__cause__``), so a chained traceback shows no secret either;
- log records of rlft's and its clients' loggers (``rlft``, ``httpx``, ``botocore``, ...);
- the job store's write path: every string written to SQLite.

A server that echoes a key back is covered by the same rule: the key is known, so it is masked in
whatever field the server put it. Values shorter than ``MIN_SECRET_LENGTH`` are not masked by
value (they would hide ordinary words); ``sk-`` keys and bearer tokens are also masked by shape.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SecretFilter",
    "install_log_filter",
    "redact",
    "redact_value",
    "redacting",
    "register_secret",
    "register_settings",
    "scrub_current_exception",
    "scrub_exception",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
# Loggers whose records may carry what rlft's clients sent or received.
LOGGERS = ("rlft", "rlft_providers", "httpx", "httpcore", "botocore", "boto3", "s3transfer",
           "urllib3", "azure")  # fmt: skip
# Keys and tokens masked by shape, even when rlft never held them (a server echoing another key).
_SHAPES = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,}"), "sk-" + MASK),
    # A token has 16+ characters with a digit or an inner dot (JWTs): "bearer authentication." is
    # prose, not a token.
    (
        re.compile(r"(?i)\bbearer\s+(?=[\w~+/=-]*(?:\d|\.[\w~+/=-]))[\w.~+/=-]{16,}"),
        "Bearer " + MASK,
    ),
)
_MAX_DEPTH = 64

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    # The ways a server or a library may write the value back: as is, JSON-escaped, URL-quoted.
    return {value, json.dumps(value)[1:-1], value.replace("/", "\\/"), quote(value, safe=""),
            quote_plus(value)}  # fmt: skip


def register_secret(value: object) -> None:
    """Mask ``value`` (a ``str`` or a ``pydantic.SecretStr``) in everything rlft raises, logs and
    stores from now on, for the life of the process. Empty and short values are ignored.

    Plugins call this for credentials they obtain at runtime (a token from a credential chain);
    settings fields typed ``SecretStr`` are registered for them when the settings are built.
    """
    global _pattern
    getter = getattr(value, "get_secret_value", None)
    text = getter() if callable(getter) else value
    if not isinstance(text, str) or len(text) < MIN_SECRET_LENGTH:
        return
    with _lock:
        forms = {form for form in _forms(text) if form not in _values}
        if not forms:
            return
        _values.update(forms)
        # Longest first, so a value that contains another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(form) for form in ordered))
    install_log_filter()


def register_settings(settings: object) -> None:
    """Register every ``SecretStr`` value of a settings model (top level, and inside dicts)."""
    fields = getattr(settings, "__dict__", {})
    for value in fields.values():
        items = value.values() if isinstance(value, Mapping) else (value,)
        for item in items:
            if callable(getattr(item, "get_secret_value", None)):
                register_secret(item)


def redact(text: str) -> str:
    """``text`` with every registered secret, ``sk-`` key and bearer token replaced by ``***``."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """``value`` with ``redact`` applied to every string inside dicts, lists and tuples.

    Other objects are returned as they are (their own reprs are responsible for themselves).
    """
    if isinstance(value, str):
        return redact(value)
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping) and type(value) is dict:
        return {redact_value(k, _depth + 1): redact_value(v, _depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(redact_value(item, _depth + 1) for item in value)
    return value


def scrub_exception(error: BaseException | None) -> None:
    """Redact, in place, the text of ``error`` and of every exception chained to it.

    Changes ``args``, string attributes and ``__notes__``, which is what a traceback prints, so a
    foreign exception (``httpx``, botocore) chained under an ``RLFTError`` shows no secret.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen or len(seen) > _MAX_DEPTH:
            continue
        seen.add(id(current))
        try:
            current.args = tuple(redact_value(arg) for arg in current.args)
            for name, attr in list(vars(current).items()):
                if isinstance(attr, str) and not name.startswith("__"):
                    setattr(current, name, redact_value(attr))
            notes = getattr(current, "__notes__", None)
            if isinstance(notes, list):
                current.__notes__ = [redact(str(note)) for note in notes]
        except (AttributeError, TypeError):  # a read-only attribute: leave that one
            pass
        todo += [current.__cause__, current.__context__]
        todo += list(getattr(current, "exceptions", ()) or ())


def scrub_current_exception() -> None:
    """``scrub_exception`` on the exception being handled, if any (it becomes ``__context__``)."""
    scrub_exception(sys.exc_info()[1])


# --- logging ------------------------------------------------------------------------------------


class SecretFilter(logging.Filter):
    """Redacts a log record's message, arguments and exception text. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] not in LOGGERS:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            clean = redact(text)
            if clean != text:
                record.exc_text = clean
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_filter = SecretFilter()
_installed = False


def install_log_filter() -> None:
    """Redact records of rlft's and its clients' loggers as they are made. Idempotent.

    A ``logging.Filter`` on a logger does not see its children's records (``botocore.endpoint``),
    so the filter runs in the log record factory, for the logger families in ``LOGGERS`` only.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)


# --- the job store ------------------------------------------------------------------------------


class _RedactingConnection:
    """A DB-API connection whose ``execute``/``executemany`` redact every string parameter."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Iterable[Any] = (), /) -> Any:
        return self._conn.execute(sql, _params(parameters))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]], /) -> Any:
        return self._conn.executemany(sql, (_params(row) for row in rows))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _params(parameters: Any) -> Any:
    if isinstance(parameters, Mapping):
        return {key: redact_value(value) for key, value in parameters.items()}
    return tuple(redact_value(value) for value in parameters)


def redacting(conn: Any) -> Any:
    """Wrap a ``sqlite3.Connection`` so nothing written through it holds a registered secret."""
    return _RedactingConnection(conn)
