"""Row checks: the generic chat-format rules, one backend's rules, and grader field references.

A ``RowChecker`` sees one row at a time and keeps only small per-row traces (a 64-bit hash for
duplicate detection, line numbers of rows missing a grader field), so checking a file streams.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from rlft.datasets._image_checks import ImageChecks
from rlft.datasets._report import Problem, Severity, ValidationReport
from rlft.datasets._rules import GENERIC_ROLES, MESSAGE_KEYS, PART_TYPES, DatasetRules

__all__ = [
    "RESERVED",
    "DatasetRole",
    "ItemReferenceLike",
    "RowChecker",
    "canonical",
    "format_path",
    "kind",
]

RESERVED = ("messages", "tools")
"""The only reserved row keys (OpenAI's RFT schema); every other key is an item field."""

DatasetRole = Literal["train", "validation"]


class ItemReferenceLike(Protocol):
    """What ``rlft.graders.item_references`` returns: one ``{{ item.<path> }}`` in a template."""

    @property
    def path(self) -> tuple[str | int, ...]: ...
    @property
    def grader_path(self) -> str: ...
    @property
    def template(self) -> str: ...


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(value: Any) -> bytes:
    """The canonical JSON of a row: sorted keys, no spaces, UTF-8. Formatting never changes it."""
    return _CANONICAL.encode(value).encode()


def kind(value: Any) -> str:
    """A JSON type name with its article, for messages: ``a string``, ``an array``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"a number ({json.dumps(value)})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def format_path(path: Sequence[str | int]) -> str:
    """``("choices", 0, "x")`` -> ``choices[0].x``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _resolve(item: dict[str, Any], path: Sequence[str | int]) -> bool:
    """Whether ``item`` has a value at ``path`` (dict keys and list indexes; null counts)."""
    current: Any = item
    for step in path:
        if isinstance(step, str):
            if not isinstance(current, dict) or step not in current:
                return False
            current = current[step]
        else:
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return False
            current = current[step]
    return True


_LAST_USER_FIX = "end each row's messages with the user turn the model should answer"
_OBJECT_FIX = 'make each row a JSON object: {"messages": [{"role": "user", "content": "..."}]}'
_MESSAGES_FIX = 'give each row "messages": a list of {"role": ..., "content": ...} objects'


class RowChecker(ImageChecks):
    """Check rows one by one against the generic rules, a backend's rules and grader references.

    Image parts are rewritten to the one shape rows hold (``rlft.datasets.images``) before the
    checks; after ``check``, ``row`` and ``row_bytes`` are the row as rewritten.

    Args:
        file: The file or source name problems carry.
        rules: The backend's rules, or ``None`` for generic checks only.
        role: Whether this is the training or the validation set (limits differ).
        references: The grader's ``item.*`` references to find in every row.
        base_dir: Where image parts' relative ``path``s are resolved (the file's directory).
        image_root: The folder local images must lie in (default: ``base_dir``, else the
            working directory).
    """

    def __init__(
        self,
        *,
        file: str | None,
        rules: DatasetRules | None = None,
        role: DatasetRole = "train",
        references: Sequence[ItemReferenceLike] = (),
        base_dir: Path | None = None,
        image_root: Path | None = None,
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        self.image_root = image_root or base_dir or Path.cwd()
        self.row: dict[str, Any] | None = None
        self.row_bytes = b""
        self._row_images = 0
        self._role: str | None = None
        self.rules = rules
        self.role = role
        self.references = list(references)
        self.problems: list[Problem] = []
        self.rows = 0
        self.rendered_bytes = 0
        self._hashes = array("q")
        self._where = array("q")  # the line (files) or row index (records) of each hash
        self._missing = [array("q") for _ in self.references]
        self._no_reference_answer = array("q")
        self._line: int | None = None
        self._row: int | None = None

    def _here(self) -> int:
        # One int per location: a line as itself, a record index as -(index + 1).
        if self._line is not None:
            return self._line
        return -((self._row or 0) + 1)

    # --- problems -----------------------------------------------------------------------------

    def add(self, problem: Problem) -> None:
        """Record a problem found elsewhere (the file reader)."""
        self.problems.append(problem)

    def _report(
        self,
        severity: Severity,
        code: str,
        message: str,
        fix: str,
        *,
        field: str | None = None,
    ) -> None:
        self.problems.append(
            Problem(
                severity=severity,
                code=code,
                message=message,
                fix=fix,
                file=self.file,
                line=self._line,
                field=field,
                row=self._row,
            )
        )

    # --- rows ---------------------------------------------------------------------------------

    def check(
        self, value: Any, *, line: int | None, row: int, canonical_bytes: bytes | None = None
    ) -> bool:
        """Check one parsed row. Returns ``False`` if it is not an object (it cannot be a row).

        Args:
            value: The parsed JSON value.
            line: Its 1-based line in the file, if it came from one.
            row: Its 0-based index among the rows.
            canonical_bytes: ``canonical(value)`` if the caller already computed it.
        """
        self._line, self._row = line, row
        self.rows += 1
        if not isinstance(value, dict):
            self._report("error", "not-an-object", f"the row is {kind(value)}", _OBJECT_FIX)
            return False
        normalized = self._normalize_images(value)
        if normalized is not value:
            value, canonical_bytes = normalized, None
        data = canonical(value) if canonical_bytes is None else canonical_bytes
        self.row, self.row_bytes = value, data
        self.rendered_bytes += len(data) + 1
        self._hashes.append(hash(data))
        self._where.append(self._here())
        self._row_images = 0
        self._check_messages(value)
        self._check_image_count()
        self._check_tools(value)
        item = {k: v for k, v in value.items() if k not in RESERVED}
        if self.rules is not None:
            self._check_item_for_target(item)
        for index, reference in enumerate(self.references):
            if not _resolve(item, reference.path):
                self._missing[index].append(self._here())
        return True

    def _check_messages(self, row: dict[str, Any]) -> None:
        if "messages" not in row:
            self._report("error", "missing-messages", 'the row has no "messages"', _MESSAGES_FIX)
            return
        messages = row["messages"]
        if not isinstance(messages, list):
            self._report(
                "error",
                "messages-type",
                f'"messages" is {kind(messages)}, not a list',
                _MESSAGES_FIX,
                field="messages",
            )
            return
        if not messages:
            self._report(
                "error", "empty-messages", '"messages" is empty', _MESSAGES_FIX, field="messages"
            )
            return
        roles = [self._check_message(i, m) for i, m in enumerate(messages)]
        last = roles[-1]
        if last is not None and last != "user":
            self._report(
                "error",
                "last-not-user",
                f'the last message is "{last}", not "user"',
                _LAST_USER_FIX,
                field=f"messages[{len(messages) - 1}].role",
            )
        if self.rules is not None and self.rules.single_turn:
            self._check_single_turn(roles)

    def _check_message(self, index: int, message: Any) -> str | None:
        """Check one message; return its role if it is a valid string role."""
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            self._report(
                "error",
                "message-type",
                f"{where} is {kind(message)}, not an object",
                'write each message as {"role": "user", "content": "..."}',
                field=where,
            )
            return None
        role = self._check_role(where, message)
        for key in message:
            if key not in MESSAGE_KEYS:
                self._report(
                    "warning",
                    "unknown-message-key",
                    f'{where} has an unknown key "{key}"',
                    "use only role, content, name, tool_calls and tool_call_id in messages",
                    field=f"{where}.{key}",
                )
        for key in ("name", "tool_call_id"):
            if key in message and not isinstance(message[key], str):
                self._report(
                    "error",
                    "field-type",
                    f"{where}.{key} is {kind(message[key])}, not a string",
                    f"write {key} as a JSON string (in double quotes)",
                    field=f"{where}.{key}",
                )
        self._check_content(where, message, role)
        return role

    def _check_role(self, where: str, message: dict[str, Any]) -> str | None:
        if "role" not in message:
            self._report(
                "error",
                "missing-role",
                f'{where} has no "role"',
                'give every message a "role": "user", "assistant", "developer", ...',
                field=f"{where}.role",
            )
            return None
        role = message["role"]
        if not isinstance(role, str):
            self._report(
                "error",
                "role-type",
                f"{where}.role is {kind(role)}, not a string",
                'write the role as a string: "user", "assistant", ...',
                field=f"{where}.role",
            )
            return None
        if role not in GENERIC_ROLES:
            self._report(
                "error",
                "unknown-role",
                f'{where}.role "{role}" is not a chat role',
                "use one of: " + ", ".join(sorted(GENERIC_ROLES)),
                field=f"{where}.role",
            )
            return None
        if self.rules is not None and role not in self.rules.roles:
            fix = self.rules.role_fixes.get(role) or "use one of: " + ", ".join(
                sorted(self.rules.roles)
            )
            self._report(
                "error",
                "role-not-supported",
                f'{self.rules.label} does not accept role "{role}"',
                fix,
                field=f"{where}.role",
            )
        return role

    def _check_content(self, where: str, message: dict[str, Any], role: str | None) -> None:
        self._role = role  # image parts check it (image_roles)
        field = f"{where}.content"
        content = message.get("content")
        if content is None:
            if role == "assistant" and message.get("tool_calls"):
                return  # an assistant turn that only calls tools has no content
            what = f'{where} has no "content"' if "content" not in message else f"{field} is null"
            self._report(
                "error",
                "missing-content",
                what,
                "give every message its text in content",
                field=field,
            )
            return
        if isinstance(content, str):
            if not content.strip():
                self._report(
                    "error",
                    "empty-content",
                    f"{field} is an empty string",
                    "put the message text in content, or drop the message",
                    field=field,
                )
            return
        if not isinstance(content, list):
            self._report(
                "error",
                "content-type",
                f"{field} is {kind(content)}; expected a string or a list of content parts",
                'write content as a string: "content": "..." (quote numbers)',
                field=field,
            )
            return
        if not content:
            self._report(
                "error",
                "empty-content",
                f"{field} is an empty list",
                "put the message text in content, or drop the message",
                field=field,
            )
        for index, part in enumerate(content):
            self._check_part(f"{field}[{index}]", part)

    def _check_part(self, where: str, part: Any) -> None:
        fix = 'write a text part as {"type": "text", "text": "..."}'
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            what = f"{kind(part)}" if not isinstance(part, dict) else 'an object without "type"'
            self._report("error", "content-part", f"{where} is {what}", fix, field=where)
            return
        part_type = part["type"]
        if part_type == "input_image":
            return  # only an image that could not be loaded keeps this type: reported then
        if part_type not in PART_TYPES:
            self._report(
                "error",
                "content-part",
                f'{where} has unknown type "{part_type}"',
                fix,
                field=f"{where}.type",
            )
            return
        if part_type == "text":
            text = part.get("text")
            if not isinstance(text, str) or not text.strip():
                what = "is empty" if isinstance(text, str) else f"is {kind(text)}"
                self._report("error", "content-part", f"{where}.text {what}", fix, field=where)
        if part_type == "image_url":
            self._check_image(where, part)
            return
        rules = self.rules
        if rules is None:
            return
        if part_type not in rules.part_types:
            self._report(
                "error",
                "content-not-supported",
                f'{rules.label} does not accept "{part_type}" content',
                "send text only to this backend",
                field=f"{where}.type",
            )
        elif part_type in rules.part_warnings:
            self._report(
                "warning",
                "content-not-supported",
                f'{rules.label} may not accept "{part_type}" content (undocumented)',
                "prefer text-only rows for this backend, or check the service accepts images",
                field=f"{where}.type",
            )

    def _check_single_turn(self, roles: list[str | None]) -> None:
        # One model answer per row. Earlier assistant turns are few-shot examples (AWS's RFT data
        # guide allows them): each answers the user turn before it, so the turns alternate.
        label = self.rules.label if self.rules else "this backend"
        few_shot = self.rules is not None and self.rules.few_shot
        previous: str | None = None
        users = 0
        for index, role in enumerate(roles):
            if role == "system":
                continue
            users += role == "user"
            if role == "user" and users > 1 and not few_shot:
                self._report(
                    "error",
                    "multi-turn",
                    f"{label} is single-turn, and messages[{index}] is a second user turn",
                    "put the whole prompt in one user message",
                    field=f"messages[{index}]",
                )
            elif role == "user" and previous == "user":
                self._report(
                    "error",
                    "multi-turn",
                    f"{label} is single-turn, and messages[{index}] is a second user message in "
                    "a row",
                    "merge the user messages into one, or put a few-shot assistant answer "
                    "between them",
                    field=f"messages[{index}]",
                )
            elif role == "assistant" and previous != "user" and few_shot:
                self._report(
                    "error",
                    "few-shot-order",
                    f"messages[{index}] is an assistant turn that answers no user turn",
                    "give each few-shot assistant answer the user turn it answers, just before it",
                    field=f"messages[{index}]",
                )
            previous = role
        if "system" in roles[1:]:
            self._report(
                "error",
                "system-not-first",
                "a system message comes after another message",
                "put the system message first",
                field=f"messages[{roles.index('system', 1)}]",
            )

    def _check_tools(self, row: dict[str, Any]) -> None:
        if "tools" not in row or row["tools"] is None:
            return
        tools = row["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            self._report(
                "error",
                "tools-type",
                f'"tools" is {kind(tools)}; expected a list of tool objects',
                'write tools as [{"type": "function", "function": {"name": ...}}]',
                field="tools",
            )
            return
        if self.rules is not None and self.rules.ignores_tools and tools:
            self._report(
                "warning",
                "tools-ignored",
                f"{self.rules.label} ignores per-row tools",
                "pass tools to the local runner's options instead, or drop them from rows",
                field="tools",
            )

    def _check_item_for_target(self, item: dict[str, Any]) -> None:
        rules = self.rules
        assert rules is not None
        for name in sorted(rules.required_item_fields - item.keys()):
            self._report(
                "error",
                "missing-required-field",
                f'{rules.label} needs the item field "{name}" in every row, and the row lacks it',
                f'add "{name}" to the row',
                field=f"item.{name}",
            )
        for name in rules.reserved_item_fields & item.keys():
            self._report(
                "error",
                "reserved-field",
                f'the item field "{name}" collides with a name {rules.label} uses',
                f'rename "{name}" (and the grader templates that read it)',
                field=f"item.{name}",
            )
        if not rules.reference_answer:
            return
        if "reference_answer" not in item:
            if not item:
                self._report(
                    "error",
                    "missing-reference-answer",
                    f"{rules.label} needs a reference_answer, and the row has no item fields",
                    'add "reference_answer": the expected answer (a string or an object)',
                    field="reference_answer",
                )
            else:
                self._no_reference_answer.append(self._here())
            return
        answer = item["reference_answer"]
        if not isinstance(answer, str | dict):
            self._report(
                "error",
                "reference-answer-type",
                f"reference_answer is {kind(answer)}; {rules.label} wants a string or an object",
                "write reference_answer as a string or an object",
                field="reference_answer",
            )
        elif not (answer.strip() if isinstance(answer, str) else answer):
            self._report(
                "error",
                "empty-reference-answer",
                "reference_answer is empty",
                "give each row its expected answer in reference_answer",
                field="reference_answer",
            )

    # --- the whole set ------------------------------------------------------------------------

    def finish(self) -> ValidationReport:
        """Add the checks that need every row (duplicates, counts, grader fields); the report."""
        self._line = self._row = None
        self._duplicates()
        self._grader_fields()
        self._reference_answer_default()
        self._counts()
        name = self.file or "<records>"
        return ValidationReport(problems=self.problems, rows={name: self.rows})

    def _duplicates(self) -> None:
        # Find repeated hashes without a Python object per row: spread the 8-byte hashes over 256
        # small arrays, sort one at a time, and keep only the values seen twice. Then one pass in
        # file order flags every repeat and names its first occurrence.
        hashes, where = self._hashes, self._where
        buckets = [array("q") for _ in range(256)]
        for value in hashes:
            buckets[value & 255].append(value)
        repeated: set[int] = set()
        for bucket in buckets:
            ordered = sorted(bucket)
            repeated.update(a for a, b in zip(ordered, ordered[1:], strict=False) if a == b)
        del buckets
        if not repeated:
            return
        first: dict[int, int] = {}
        for index, value in enumerate(hashes):
            if value not in repeated:
                continue
            if value not in first:
                first[value] = index
                continue
            line, row = _decode(where[index])
            self.problems.append(
                Problem(
                    severity="warning",
                    code="duplicate-row",
                    message=f"the row repeats {_describe(where[first[value]])}",
                    fix="drop repeated rows: they weigh those prompts twice in training",
                    file=self.file,
                    line=line,
                    row=row,
                )
            )

    def _grader_fields(self) -> None:
        for reference, missing in zip(self.references, self._missing, strict=True):
            if not missing:
                continue
            path = format_path(reference.path)
            message = (
                f"the grader reads {{{{ {reference.template} }}}} (grader field "
                f'{reference.grader_path}), and the row has no "{path}"'
            )
            fix = f'add "{path}" to every row, or change the grader\'s {reference.grader_path}'
            if reference.path and reference.path[0] in RESERVED:
                fix = f'"{reference.path[0]}" is reserved, not an item field: rename the field'
            for where in missing:
                self.problems.append(
                    Problem(
                        severity="error",
                        code="missing-item-field",
                        message=message,
                        fix=fix,
                        file=self.file,
                        field=f"item.{path}",
                        line=_decode(where)[0],
                        row=_decode(where)[1],
                    )
                )

    def _reference_answer_default(self) -> None:
        rows = self._no_reference_answer
        if not rows or self.rules is None:
            return
        fix = "add reference_answer to these rows, or rely on the default knowingly"
        message = "no reference_answer: rlft sends the row's item fields as reference_answer"
        if len(rows) == self.rows:
            # Every row: the convention is in use on purpose. One note, not 20,000.
            self._file_problem("warning", "reference-answer-default", message, fix)
            return
        for where in rows:  # only some rows: more likely a mistake, so name each
            self.problems.append(
                Problem(
                    severity="warning",
                    code="reference-answer-default",
                    message=message,
                    fix=fix,
                    file=self.file,
                    field="reference_answer",
                    line=_decode(where)[0],
                    row=_decode(where)[1],
                )
            )

    def _file_problem(self, severity: Severity, code: str, message: str, fix: str) -> None:
        self.problems.append(
            Problem(severity=severity, code=code, message=message, fix=fix, file=self.file)
        )

    def _counts(self) -> None:
        valid_rows = len(self._hashes)
        if self.rows == 0 and not self.problems:
            self._file_problem("error", "no-rows", "the dataset has no rows", "add rows")
            return
        rules = self.rules
        if rules is None or valid_rows == 0:
            return
        label, noun = rules.label, f"{self.role} set"
        if self.role == "train":
            if rules.min_rows is not None and valid_rows < rules.min_rows:
                self._file_problem(
                    "error",
                    "too-few-rows",
                    f"{label} needs at least {rules.min_rows:,} rows; the {noun} has "
                    f"{valid_rows:,}",
                    f"add rows until there are {rules.min_rows:,}",
                )
            if rules.warn_min_rows is not None and valid_rows < rules.warn_min_rows:
                self._file_problem(
                    "warning",
                    "too-few-rows",
                    f"{label} documents a minimum of {rules.warn_min_rows} training rows; the "
                    f"{noun} has {valid_rows:,}",
                    f"add rows until there are {rules.warn_min_rows}",
                )
        limit = rules.max_rows if self.role == "train" else rules.max_validation_rows
        if limit is not None and valid_rows > limit:
            self._file_problem(
                "error",
                "too-many-rows",
                f"{label} accepts at most {limit:,} rows in a {noun}; this one has {valid_rows:,}",
                f"trim it to {limit:,} rows (Dataset.split or slicing: ds[:{limit}])",
            )
        if rules.max_file_bytes is not None and self.rendered_bytes > rules.max_file_bytes:
            mib = rules.max_file_bytes // 1024 // 1024
            self._file_problem(
                "error",
                "file-too-large",
                f"{label} accepts files under {mib} MiB; this one renders to "
                f"{self.rendered_bytes / 1024 / 1024:,.0f} MiB",
                "split the data or shorten rows",
            )


def _decode(where: int) -> tuple[int | None, int | None]:
    """The (line, row) an encoded location stands for."""
    return (where, None) if where > 0 else (None, -where - 1)


def _describe(where: int) -> str:
    return f"line {where}" if where > 0 else f"records[{-where - 1}]"
