"""Render a dataset for a backend: pure functions from rows to bytes (or rows for TRL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rlft.datasets._checks import RESERVED
from rlft.datasets._report import Problem, ValidationReport
from rlft.datasets._targets import TARGETS
from rlft.exceptions import DatasetValidationError, UsageError

if TYPE_CHECKING:
    from rlft.datasets._dataset import Dataset

__all__ = ["render", "render_prompt", "to_trl_rows"]

_JSONL_TARGETS = ("openai", "azure", "bedrock")


class _Tokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, /, **kwargs: Any) -> Any: ...


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def render(dataset: Dataset, target: str) -> bytes:
    """The upload file for a hosted backend, as UTF-8 JSONL bytes (LF, no BOM).

    ``"openai"`` and ``"azure"``: each row as is, ``{"messages", "tools"?, **item}``; the item
    fields stay top-level, where graders read them as ``item.*``.

    ``"bedrock"``: ``{"messages", "reference_answer", **item}``. Bedrock requires a non-empty
    ``reference_answer`` in every record; a row without one gets its item fields (an object) as
    ``reference_answer``. The item fields also stay top-level, where Bedrock passes extra fields
    on to the grader Lambda.

    Rendering does not validate: call ``dataset.validate(provider=target)`` first.

    Args:
        dataset: The rows.
        target: ``"openai"``, ``"azure"`` or ``"bedrock"`` (the local runner takes
            ``to_trl_rows``).

    Raises:
        UsageError: Another target.
    """
    if target in ("openai", "azure"):
        return b"".join(row + b"\n" for row in dataset.raw_rows())
    if target == "bedrock":
        return b"".join(
            _dumps(_bedrock_record(json.loads(row))) + b"\n" for row in dataset.raw_rows()
        )
    hint = "; for the local runner use to_trl_rows(dataset)" if target == "local" else ""
    known = ", ".join(_JSONL_TARGETS)
    raise UsageError(f"no JSONL rendering for target {target!r} (known: {known}){hint}")


def _bedrock_record(row: dict[str, Any]) -> dict[str, Any]:
    item = {k: v for k, v in row.items() if k not in RESERVED}
    answer = item.pop("reference_answer", None)
    if answer is None:
        answer = dict(item)
    record: dict[str, Any] = {"messages": row["messages"]}
    if "tools" in row:
        record["tools"] = row["tools"]
    record["reference_answer"] = answer
    record.update(item)
    return record


def to_trl_rows(dataset: Dataset) -> list[dict[str, Any]]:
    """Rows for TRL's ``GRPOTrainer``: ``{"prompt": messages, **item}``, conversational format.

    Content given as a list of text parts becomes one string (parts joined by newlines), because
    most chat templates expect ``content`` to be a string.

    Each row carries exactly its own item fields (a missing field stays missing, never ``None``).
    A Hugging Face dataset takes its columns from the first row, so rows whose fields differ need
    packing first (the local runner stores each item as one JSON column). Per-row ``tools`` are
    dropped: TRL takes tools as trainer callables.

    Raises:
        DatasetValidationError: An item field is named like one of TRL's own reward-function
            arguments (``prompt``, ``completions``, ``trainer_state``, ...), listing each row.
    """
    reserved = TARGETS["local"].reserved_item_fields
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, example in enumerate(dataset):
        for name in reserved & example.item.keys():
            problems.append(
                Problem(
                    severity="error",
                    code="reserved-field",
                    message=f'the item field "{name}" collides with a name TRL uses',
                    fix=f'rename "{name}" (and the grader templates that read it)',
                    file=dataset.source,
                    line=example.line,
                    field=f"item.{name}",
                    row=index,
                )
            )
        rows.append({"prompt": [_flatten(m) for m in example.messages], **example.item})
    if problems:
        report = ValidationReport(
            problems=problems, rows={dataset.source or "<records>": len(rows)}
        )
        raise DatasetValidationError(report.summary(limit=20), report=report)
    return rows


def render_prompt(messages: Sequence[dict[str, Any]], tokenizer: Any) -> str:
    """The prompt text a local model sees for these messages.

    With a tokenizer that has a chat template: the template, with the generation prompt added.
    Otherwise plain text, one ``role: content`` line per message, then ``assistant:``.

    Args:
        messages: The row's messages.
        tokenizer: A Hugging Face tokenizer (or anything with ``chat_template`` and
            ``apply_chat_template``), or ``None`` for plain text.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        if not isinstance(text, str):  # pragma: no cover - a tokenizer breaking its contract
            raise UsageError(
                f"{type(tokenizer).__name__}.apply_chat_template returned {type(text)}"
            )
        return text
    lines = [f"{m.get('role', 'user')}: {_text(m.get('content'))}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def _flatten(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" for p in content
    ):
        return {**message, "content": _text(content)}
    return message


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and "text" in part
        )
    return "" if content is None else str(content)
