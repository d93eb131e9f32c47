"""Requests checked against botocore's own service model before they are sent.

botocore's ``ParamValidator`` checks types, required members and minimums, but not the
models' patterns, maximum lengths, maximum values or enums (reference/bedrock.md §2.2), and
moto checks almost nothing. A value the model forbids would only fail inside AWS, after the data
was uploaded. ``check_request`` walks an operation's input shape in the installed model and
refuses such a value with one line: the field, what the model allows, and which model (service,
API version, botocore version) says so.

A pattern must match the whole value. The models' patterns carry no ``^...$`` anchors, yet a
partial match cannot be what they mean: ``TagKey``'s ``[a-zA-Z0-9\\s._:/=+@-]*`` would then accept
any key, while AWS's tagging rules allow only those characters. Unicode classes Python's ``re``
lacks (``\\p{L}``, ``\\p{N}``, ``\\p{Z}`` in IAM's and Lambda's tag patterns) become ``\\w`` and
``\\s``: a little wider, so nothing valid is refused. A pattern ``re`` still cannot compile is
skipped (none in the shapes rlft sends; a test pins that).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore
from botocore.model import OperationModel, Shape

from rlft.exceptions import UsageError

__all__ = ["Violation", "check_request", "model_source", "python_pattern", "violations"]

_SHOWN = 80  # characters of an offending value shown in an error (never a blob)


@dataclass(frozen=True)
class Violation:
    """One value the service model forbids."""

    path: str
    """Where in the request: ``customizationConfig.rftConfig.hyperParameters.batchSize``."""
    shape: str
    """The model's shape name (``RFTBatchSize``)."""
    value: Any
    allowed: str
    """What the model allows, in words."""
    sensitive: bool = False
    """The model marks the shape (or one around it) sensitive, or the member is unknown: the
    value is never shown."""

    def describe(self) -> str:
        """``path = value: allowed (shape X)``; sensitive values and blobs are not shown."""
        if self.sensitive:
            shown = "<not shown>"
        elif isinstance(self.value, bytes | bytearray):
            shown = f"<{len(self.value)} bytes>"
        else:
            shown = repr(self.value)
            if len(shown) > _SHOWN:
                shown = shown[: _SHOWN - 1] + "…"
        return f"{self.path} = {shown}: {self.allowed} (shape {self.shape})"


_UNICODE_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\w", r"\p{Z}": r"\s"}


def python_pattern(pattern: str) -> str:
    """A model pattern in Python's ``re`` dialect (Unicode classes widened to ``\\w``/``\\s``)."""
    for unicode_class, python in _UNICODE_CLASSES.items():
        pattern = pattern.replace(unicode_class, python)
    return pattern


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(python_pattern(pattern))
    except re.error:
        return None


def _range(low: Any, high: Any, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}{unit}"
    if low is not None:
        return f"at least {low:g}{unit}"
    return f"at most {high:g}{unit}"


def _violation(shape: Shape, path: str, value: Any, allowed: str, hidden: bool) -> Violation:
    return Violation(path, shape.name, value, allowed, hidden)


def _sized(
    shape: Shape, path: str, value: Any, size: int, unit: str, hidden: bool
) -> Iterator[Violation]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if (low is not None and size < low) or (high is not None and size > high):
        yield _violation(shape, path, value, _range(low, high, unit), hidden)


def violations(
    shape: Shape, value: Any, path: str = "", *, hidden: bool = False
) -> Iterator[Violation]:
    """Every value under ``value`` that ``shape`` forbids: enums, patterns, lengths, ranges and
    unknown or missing structure members. Types are botocore's ``ParamValidator``'s job.

    Values under a shape the model marks ``sensitive`` (``hidden``) are never shown."""
    hidden = hidden or bool(shape.metadata.get("sensitive"))
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return
        members: Mapping[str, Shape] = shape.members  # type: ignore[attr-defined]
        for name in getattr(shape, "required_members", ()):
            if name not in value:
                yield Violation(f"{path}.{name}".lstrip("."), shape.name, None, "required")
        for name, item in value.items():
            where = f"{path}.{name}".lstrip(".")
            if name not in members:
                allowed = "not a member; members: " + ", ".join(sorted(members))
                yield Violation(where, shape.name, item, allowed, sensitive=True)
            else:
                yield from violations(members[name], item, where, hidden=hidden)
    elif kind == "list":
        if isinstance(value, list | tuple):
            yield from _sized(shape, path, value, len(value), " items", hidden)
            for index, item in enumerate(value):
                yield from violations(shape.member, item, f"{path}[{index}]", hidden=hidden)  # type: ignore[attr-defined]
    elif kind == "map":
        if isinstance(value, Mapping):
            yield from _sized(shape, path, value, len(value), " entries", hidden)
            for key, item in value.items():
                yield from violations(shape.key, key, f"{path} key", hidden=hidden)  # type: ignore[attr-defined]
                where = f"{path}[…]" if hidden else f"{path}[{key!r}]"  # a key may be secret too
                yield from violations(shape.value, item, where, hidden=hidden)  # type: ignore[attr-defined]
    elif kind == "string":
        if not isinstance(value, str):
            return
        enum: list[str] = getattr(shape, "enum", [])
        if enum and value not in enum:
            yield _violation(shape, path, value, "one of " + " | ".join(enum), hidden)
            return
        yield from _sized(shape, path, value, len(value), " characters", hidden)
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            yield _violation(shape, path, value, f"must match the pattern {pattern}", hidden)
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = shape.metadata.get("min"), shape.metadata.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                yield _violation(shape, path, value, _range(low, high, ""), hidden)
    elif kind == "blob" and isinstance(value, bytes | bytearray):
        yield from _sized(shape, path, value, len(value), " bytes", hidden)


def model_source(operation: OperationModel) -> str:
    """``botocore 1.44.8 service model bedrock/2023-04-20``: where the rules come from."""
    service = operation.service_model
    return (
        f"botocore {botocore.__version__} service model "
        f"{service.service_name}/{service.api_version}"
    )


def check_request(operation: OperationModel, params: Mapping[str, Any]) -> None:
    """Refuse ``params`` for ``operation`` if the service model forbids any value.

    Raises:
        UsageError: One line per forbidden value, naming the field, what is allowed and the
            model (botocore version, service, API version) the rule comes from.
    """
    shape = operation.input_shape
    if shape is None:
        return
    found = list(violations(shape, params))
    if found:
        listed = "; ".join(v.describe() for v in found)
        raise UsageError(
            f"{operation.name}: {listed} — per the {model_source(operation)}; change the "
            "setting or name that produced it"
        )
