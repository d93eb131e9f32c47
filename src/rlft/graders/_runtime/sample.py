"""Normalise what a model produced into the ``sample`` dict graders read.

A sample is what OpenAI's graders see (reference/openai_azure.md §2.1): ``output_text``,
``output_json`` (the text parsed as JSON, or ``None``), ``output_tools`` (the tool calls) and
``choices`` (Chat-Completions shape). Callers hand us many shapes: plain text, that dict, a chat
completion, one assistant message, or TRL's conversational completion (a list of messages).

This module is part of the engine runtime that is copied into the Bedrock Lambda package, so it
imports only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SampleError", "message_text", "normalize_item", "normalize_sample"]


class SampleError(ValueError):
    """The sample has a shape we can't read; the engine fails closed with ``sample_parse``."""


def message_text(content: Any) -> str:
    """The text of a chat message ``content``: a string, or the text parts of a part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    raise SampleError(f"message content is {type(content).__name__}, not text")


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _from_message(message: Mapping[str, Any]) -> dict[str, Any]:
    text = message_text(message.get("content"))
    tools = list(message.get("tool_calls") or [])
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text, "tool_calls": tools or None},
        "finish_reason": "tool_calls" if tools else "stop",
    }
    return {"output_text": text, "output_tools": tools, "choices": [choice]}


def normalize_sample(sample: Any) -> dict[str, Any]:
    """Return ``{"output_text", "output_json", "output_tools", "choices"}`` for any input shape.

    Raises:
        SampleError: The input is none of the accepted shapes.
    """
    if isinstance(sample, str):
        base = _from_message({"content": sample})
    elif isinstance(sample, Mapping):
        if "output_text" in sample or "output_json" in sample:
            text = sample.get("output_text")
            if text is None and sample.get("output_json") is not None:
                text = json.dumps(sample["output_json"], ensure_ascii=False)
            if not isinstance(text, str):
                raise SampleError("sample.output_text must be a string")
            base = _from_message({"content": text, "tool_calls": sample.get("output_tools")})
            if "choices" in sample:
                base["choices"] = list(sample["choices"])
            if "output_json" in sample and sample["output_json"] is not None:
                base["output_json"] = sample["output_json"]
        elif "choices" in sample:
            choices = sample["choices"]
            if not isinstance(choices, Sequence) or not choices:
                raise SampleError("sample.choices is empty")
            first = choices[0]
            message = first.get("message") if isinstance(first, Mapping) else None
            if not isinstance(message, Mapping):
                raise SampleError("sample.choices[0] has no message")
            base = _from_message(message)
            base["choices"] = list(choices)
        elif "content" in sample or "tool_calls" in sample:
            base = _from_message(sample)
        else:
            raise SampleError(
                "a sample is text, a dict with output_text, a chat completion with choices, "
                f"or a chat message; got keys {sorted(sample)[:8]}"
            )
    elif isinstance(sample, Sequence) and not isinstance(sample, bytes):
        # TRL conversational completions and Bedrock's messages: the last assistant turn.
        for message in reversed(sample):
            if isinstance(message, Mapping) and message.get("role") in (
                "assistant",
                "nova_assistant",
            ):
                base = _from_message(message)
                break
        else:
            raise SampleError("the message list has no assistant turn to grade")
    else:
        raise SampleError(f"cannot grade a sample of type {type(sample).__name__}")
    if "output_json" not in base:
        base["output_json"] = _parse_json(base["output_text"])
    base.setdefault("output_audio", None)
    return base


def normalize_item(item: Any) -> dict[str, Any]:
    """The dataset row as a dict: ``None`` is an empty row.

    Raises:
        SampleError: The item is not a mapping.
    """
    if item is None:
        return {}
    if isinstance(item, Mapping):
        return dict(item)
    raise SampleError(f"an item is a dict of dataset fields, got {type(item).__name__}")
