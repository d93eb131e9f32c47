"""Reading grader files safely: bounded size, depth and YAML alias expansion, and errors that
name the file, the line, the field and the fix.

A grader file is data a user may have been sent, so nothing here trusts it: the bytes must be
UTF-8 text, JSON and YAML documents are checked for depth and for how large they become once
YAML aliases are expanded (a "billion laughs" document is a few hundred bytes that expand to
gigabytes) *before* any Python object is built from them, and Python's own recursion limit is
never what stops a deep document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rlft.exceptions import GraderValidationError, UsageError

__all__ = [
    "MAX_GRADER_FILE_BYTES",
    "MAX_GRADER_NESTING",
    "MAX_GRADER_NODES",
    "check_grader_data",
    "field_line",
    "read_grader_file",
]

MAX_GRADER_FILE_BYTES = 8 * 1024 * 1024
"""A grader is a few kB; python source is capped at 256 kB. Anything this big is not a grader."""
MAX_GRADER_NESTING = 64
"""Objects and arrays nested deeper than this are refused (real graders nest under 10)."""
MAX_GRADER_NODES = 100_000
"""Values in the document once YAML aliases are expanded (objects, arrays and scalars)."""


class _Refused(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_grader_file(path: Path) -> tuple[Any, str, Any]:
    """Parse a ``.json``/``.yaml``/``.yml`` grader file within the limits.

    Returns:
        ``(data, text, yaml_node)``: the parsed value, the decoded text (for line lookups) and,
        for YAML, the composed root node (``None`` for JSON).

    Raises:
        UsageError: Missing file or another suffix.
        GraderValidationError: Binary, not UTF-8, not parseable, too large, too deep, or too
            many values after alias expansion; the message starts with ``file:line:``.
    """
    if not path.is_file():
        raise UsageError(f"{path}: no such grader file")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise UsageError(f"{path}: grader files are .json, .yaml or .yml, not {suffix!r}")
    try:
        size = path.stat().st_size
        if size > MAX_GRADER_FILE_BYTES:
            raise _Refused(
                f"the file is {size:,} bytes; a grader file is at most {MAX_GRADER_FILE_BYTES:,} "
                "(python source is capped at 256 kB): is this the right file?"
            )
        raw = path.read_bytes()
        text = _decode(raw)
        if suffix == ".json":
            data, node = _parse_json(text), None
        else:
            data, node = _parse_yaml(text)
    except _Refused as exc:
        where = f"{path}:{exc.line}" if exc.line else f"{path}"
        raise GraderValidationError(f"{where}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the grader file: {exc.strerror or exc}") from None
    return data, text, node


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise _Refused(
            "this is a binary file, not JSON or YAML text: pass the grader's .json/.yaml file"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _Refused(
            f"byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8 (the file looks like "
            "Latin-1 or another legacy encoding): save it as UTF-8",
            line,
        ) from None


def _parse_json(text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"not valid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise _Refused(_too_deep()) from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise _Refused(f"not valid JSON: {_one_line(exc)}") from None
    check_grader_data(data)
    return data


def _too_deep() -> str:
    return (
        f"the document nests deeper than {MAX_GRADER_NESTING} levels: a grader is a few levels "
        "of objects and arrays, so this file is corrupt or hostile"
    )


def _too_big() -> str:
    return (
        f"the document expands to more than {MAX_GRADER_NODES:,} values (YAML aliases count "
        "every time they are used): remove the anchors (&) and aliases (*), or the repetition"
    )


def _parse_yaml(text: str) -> tuple[Any, Any]:
    import yaml

    loader: Any = None
    try:
        loader = yaml.SafeLoader(text)  # the reader checks characters here already
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_yaml_node(node)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise _Refused(f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise _Refused(_too_deep()) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value the constructor rejects
        if isinstance(exc, _Refused):
            raise
        raise _Refused(f"not valid YAML: {_one_line(exc)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _yaml_children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_yaml_node(root: Any) -> None:
    """Depth and expanded size of a composed YAML graph, where an alias is the same node object.

    Each node is visited once (memoised by identity), so a billion-laughs document is measured
    in microseconds instead of being expanded; a node that contains itself is refused.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _yaml_children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            if size[key] > MAX_GRADER_NODES:
                raise _Refused(_too_big(), node.start_mark.line + 1)
            if depth[key] > MAX_GRADER_NESTING:
                raise _Refused(_too_deep(), node.start_mark.line + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Refused("a YAML alias refers to itself: remove the recursive anchor", None)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _yaml_children(node) if id(child) not in size)


def check_grader_data(data: Any) -> None:
    """Refuse grader data that is too deep, too large once shared parts are counted, or cyclic.

    Python data can share sub-objects exactly as YAML aliases do, so the same measure applies to
    ``from_openai(dict)`` and to a ``Native`` payload built in code.

    Raises:
        ValueError: With the limit that was exceeded.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        value, children_done = stack.pop()
        key = id(value)
        if children_done:
            on_path.discard(key)
            children = list(_values(value))
            size[key] = 1 + sum(size.get(id(child), 1) for child in children)
            depth[key] = 1 + max((depth.get(id(child), 1) for child in children), default=0)
            if size[key] > MAX_GRADER_NODES:
                raise _Refused(_too_big())
            if depth[key] > MAX_GRADER_NESTING:
                raise _Refused(_too_deep())
            continue
        if key in size or not isinstance(value, Mapping | list | tuple):
            continue
        if key in on_path:
            raise _Refused("the grader data contains itself (a cycle): it cannot be JSON")
        on_path.add(key)
        stack.append((value, True))
        stack.extend(
            (child, False)
            for child in _values(value)
            if isinstance(child, Mapping | list | tuple) and id(child) not in size
        )


def _values(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        yield from value.values()
    elif isinstance(value, list | tuple):
        yield from value


_KEY_AT = '"{key}"\\s*:'


def field_line(text: str, node: Any, path: str) -> int | None:
    """The line where grader field ``path`` (``graders.label.operation``) is written, if found.

    YAML keeps marks on every node; for JSON the keys are searched for in order, which finds
    the right line for any file where keys are written once per object (all real graders).
    """
    keys = [part for part in re.split(r"\.|\[\d+\]", path) if part]
    if not keys:
        return None
    if node is not None:
        return _yaml_line(node, keys)
    position, found = 0, None
    for key in keys:
        match = re.compile(_KEY_AT.format(key=re.escape(key))).search(text, position)
        if match is None:
            break
        position, found = match.end(), match.start()
    return None if found is None else text.count("\n", 0, found) + 1


def _yaml_line(node: Any, keys: list[str]) -> int | None:
    import yaml

    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line
