"""Normalise what a model produced into the ``sample`` dict graders read.

A sample is what OpenAI's graders see (reference/openai_azure.md §2.1): ``output_text``,
``output_json`` (the text parsed as a JSON object; ``{}`` when the output is not one, as OpenAI's
guide shows), ``output_tools`` (the tool calls) and ``choices`` (Chat-Completions shape).
Callers hand us many shapes: plain text, that dict, a chat completion, one assistant message, or
a conversation (TRL's conversational completions, Bedrock's messages), whose answer is the
assistant turn after the last user turn.

This module is part of the engine runtime that is copied into the Bedrock Lambda package, so it
imports only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "NotAnObject",
    "SampleError",
    "compact_sample",
    "message_text",
    "normalize_item",
    "normalize_sample",
    "plain_sample",
]

_ASSISTANT = ("assistant", "nova_assistant")
_USER = ("user", "nova_user")


class SampleError(ValueError):
    """The sample has a shape we can't read; the engine fails closed with ``sample_parse``."""


class NotAnObject(dict[str, Any]):
    """``sample["output_json"]`` when the output is not a JSON object: an empty dict.

    Python graders see ``{}`` (so ``sample["output_json"].get(...)`` works, as in OpenAI's
    guide); templates that read ``sample.output_json`` see this type and fail closed with
    ``sample_parse`` and ``why``, instead of reporting a missing field.
    """

    def __init__(self, why: str | None = None, *, text: str | None = None) -> None:
        super().__init__()
        self._why = why
        self._text = text

    @property
    def why(self) -> str:
        """What the output is instead of an object; worked out on first use (templates only)."""
        if self._why is None:
            self._why = _not_an_object_why(self._text or "")
        return self._why


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


def _output_json(text: str) -> dict[str, Any]:
    """The output parsed as a JSON object, or a ``NotAnObject`` saying what it is instead.

    Every non-object gets the same treatment: not JSON, JSON ``null``, a number, a string or an
    array are all "not an object", so the output ``"null"`` is not special. Only a text whose
    first non-space character is ``{`` can be an object (JSON's whitespace is a subset of
    ``str.lstrip``'s), so most answers skip the parse; why they are not one is worked out only
    if a template asks.
    """
    if text.lstrip()[:1] != "{":
        return NotAnObject(text=text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return NotAnObject("the sample output is not valid JSON")
    if isinstance(value, dict):
        return value
    return NotAnObject(text=text)


def _not_an_object_why(text: str) -> str:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "the sample output is not valid JSON"
    kind = _JSON_KINDS.get(type(value), "a value")
    return f"the sample output is JSON {kind}, not a JSON object"


_JSON_KINDS = {
    type(None): "null",
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


def _answer(messages: Sequence[Any]) -> Mapping[str, Any]:
    """The model's answer in a conversation: an assistant turn after the last user turn.

    A few-shot assistant turn inside the prompt comes before the last user turn, so it is never
    graded. Messages without any ``role`` (TRL's reward-function docs) are all completion.
    """
    mappings = [m for m in messages if isinstance(m, Mapping)]
    if mappings and not any("role" in m for m in mappings):
        return mappings[-1]
    for message in reversed(mappings):
        role = message.get("role")
        if role in _ASSISTANT:
            return message
        if role in _USER:
            raise SampleError(
                "no model answer: no assistant turn follows the last user turn (assistant turns "
                "inside the prompt are examples, not the answer)"
            )
    raise SampleError("no model answer: the message list has no assistant turn to grade")


def _from_message(message: Mapping[str, Any]) -> dict[str, Any]:
    text = message_text(message.get("content"))
    tools = list(message.get("tool_calls") or [])
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text, "tool_calls": tools or None},
        "finish_reason": "tool_calls" if tools else "stop",
    }
    return {"output_text": text, "output_tools": tools, "choices": [choice]}


def plain_sample(text: str) -> dict[str, Any]:
    """The sample of an answer that is just ``text`` (no tool calls), as ``normalize_sample``
    gives it. The sandbox worker rebuilds exactly this from the text alone (tested equal)."""
    return {
        "output_text": text,
        "output_tools": [],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
        "output_json": _output_json(text),
        "output_audio": None,
    }


def compact_sample(sample: Any) -> str | dict[str, Any]:
    """The answer's text when ``normalize_sample(sample) == plain_sample(text)``, else the
    normalised sample: what the batched sandbox path sends, so a plain answer crosses the pipe
    as one string and the worker rebuilds the dict.

    Raises:
        SampleError: As ``normalize_sample``.
    """
    if isinstance(sample, str):
        return sample
    if isinstance(sample, list) and sample:  # TRL's conversational completions
        message = _answer(sample)
        content = message.get("content")
        if isinstance(content, str) and not message.get("tool_calls"):
            return content
    return normalize_sample(sample)


def normalize_sample(sample: Any) -> dict[str, Any]:
    """Return ``{"output_text", "output_json", "output_tools", "choices"}`` for any input shape.

    Raises:
        SampleError: The input is none of the accepted shapes.
    """
    if isinstance(sample, str):
        return plain_sample(sample)
    if isinstance(sample, Mapping):
        if "output_text" in sample or "output_json" in sample:
            text = sample.get("output_text")
            if text is None and sample.get("output_json") is not None:
                text = json.dumps(sample["output_json"], ensure_ascii=False)
            if not isinstance(text, str):
                raise SampleError("sample.output_text must be a string")
            base = _from_message({"content": text, "tool_calls": sample.get("output_tools")})
            if "choices" in sample:
                base["choices"] = list(sample["choices"])
            given = sample.get("output_json")
            if isinstance(given, dict):
                base["output_json"] = given
            elif given is not None:
                base["output_json"] = NotAnObject(
                    f"sample.output_json is {type(given).__name__}, not a JSON object"
                )
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
        # TRL conversational completions and Bedrock's messages.
        base = _from_message(_answer(sample))
    else:
        raise SampleError(f"cannot grade a sample of type {type(sample).__name__}")
    if "output_json" not in base:
        base["output_json"] = _output_json(base["output_text"])
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
