"""Render a dataset for a backend: pure functions from rows to bytes (or rows for TRL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rlft.datasets._report import Problem, ValidationReport
from rlft.exceptions import DatasetValidationError, UsageError

if TYPE_CHECKING:
    from rlft.datasets._dataset import Dataset

__all__ = ["TRL_RESERVED_FIELDS", "render", "render_prompt", "to_trl_rows"]

# TRL passes dataset columns to reward functions as keyword arguments beside its own
# (trl/trainer/grpo_trainer.py, _calculate_rewards), so item fields with these names collide.
TRL_RESERVED_FIELDS = frozenset(
    {
        "prompt",
        "prompts",
        "completion",
        "completions",
        "completion_ids",
        "trainer_state",
        "log_extra",
        "log_metric",
        "environments",
    }
)


class _Tokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, /, **kwargs: Any) -> Any: ...


def render(dataset: Dataset, provider: str) -> bytes:
    """The upload file for a backend, as UTF-8 JSONL bytes (LF, no BOM).

    The backend's ``DatasetRules.render`` decides: ``"jsonl"`` (the default, and what a backend
    that declares no rules gets) writes each row as is, ``{"messages", "tools"?, **item}``, the
    item fields top-level where OpenAI-style graders read them as ``item.*``; a
    ``"module:function"`` is the backend's own rendering.

    Rendering does not validate: call ``dataset.validate(provider=...)`` first.

    Args:
        dataset: The rows.
        provider: A provider id, or the format name ``"jsonl"`` for OpenAI-style rows as is.

    Raises:
        UsageError: An unknown provider, or one that takes no file (the local runner takes
            ``to_trl_rows``).
    """
    from rlft._plugins import find_provider, known_providers

    how = "jsonl"
    if provider != "jsonl":
        spec = find_provider(provider)
        if spec is None:
            known = ", ".join(known_providers())
            raise UsageError(f"no provider {provider!r} to render for (installed: {known})")
        how = spec.dataset.render if spec.dataset is not None else "jsonl"
    if how == "jsonl":
        return b"".join(row + b"\n" for row in dataset.raw_rows())
    if how == "trl":
        raise UsageError(f"{provider!r} takes no upload file: use to_trl_rows(dataset)")
    from rlft._facts import import_string

    content = import_string(how)(dataset)
    if not isinstance(content, bytes):
        raise UsageError(f"{how} rendered {type(content).__name__}, not bytes")
    return content


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
    reserved = TRL_RESERVED_FIELDS
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
