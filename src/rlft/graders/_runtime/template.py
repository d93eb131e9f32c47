"""The grader template language: ``{{ sample.output_text }}``, ``{{ item.a.b }}``, ``{{ x[0].y }}``.

Templates follow OpenAI's grader templating (reference/openai_azure.md §2.1): two namespaces,
``sample`` and ``item``; nested access with ``.key``, ``[0]`` or ``["key with spaces"]``; spaces
inside the braces are optional. A template is parsed once, when the grader is built, so a typo in
a namespace or a dangling ``{{`` is a ``GraderValidationError`` before anything runs. Rendering
fails closed: a missing variable raises ``TemplateRenderError`` with kind ``invalid_variable``,
which the engine turns into a score of 0 with that reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlft.graders._runtime.sample import NotAnObject

__all__ = [
    "SAMPLE_FIELDS",
    "Template",
    "TemplateRenderError",
    "TemplateSyntaxError",
    "Variable",
    "parse_template",
    "render_value",
]

NAMESPACES = ("sample", "item")
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools", "choices", "output_audio")

_OPEN = "{{"
_CLOSE = "}}"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INDEX = re.compile(r"\[\s*(?:(-?\d+)|\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)')\s*\]")
_DOT_KEY = re.compile(r"\.\s*([A-Za-z0-9_\-]+)")


class TemplateSyntaxError(ValueError):
    """A template could not be parsed. ``str()`` says where and how to fix it."""


class TemplateRenderError(Exception):
    """A variable could not be resolved at grade time.

    Attributes:
        kind: ``"invalid_variable"`` (missing key or index) or ``"sample_parse"`` (the template
            reads ``sample.output_json`` but the output is not JSON).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Variable:
    """One ``{{ ... }}`` expression: a namespace and the keys/indexes below it."""

    namespace: str
    path: tuple[str | int, ...]
    text: str
    """The expression as written, without the braces."""

    def resolve(self, sample: Mapping[str, Any], item: Mapping[str, Any]) -> Any:
        """Look the variable up. Raises ``TemplateRenderError`` when it is missing."""
        if self.namespace == "sample":
            parsed = sample.get("output_json") if self.path[0] == "output_json" else {}
            if parsed is None or isinstance(parsed, NotAnObject):
                why = getattr(parsed, "why", "the sample output is not valid JSON")
                raise TemplateRenderError(f"{{{{ {self.text} }}}}: {why}", kind="sample_parse")
            value: Any = sample
        else:
            value = item
        walked: list[str] = [self.namespace]
        for step in self.path:
            value = _step(value, step, walked, self.text)
            walked.append(f"[{step}]" if isinstance(step, int) else f".{step}")
        return value


def _step(value: Any, step: str | int, walked: list[str], text: str) -> Any:
    where = "".join(walked)
    if isinstance(step, int):
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            try:
                return value[step]
            except IndexError:
                pass
            raise TemplateRenderError(
                f"{{{{ {text} }}}}: {where} has {len(value)} elements, no index {step}",
                kind="invalid_variable",
            )
        raise TemplateRenderError(
            f"{{{{ {text} }}}}: {where} is {_kind(value)}, not a list", kind="invalid_variable"
        )
    if isinstance(value, Mapping):
        if step in value:
            return value[step]
        raise TemplateRenderError(
            f"{{{{ {text} }}}}: {where} has no field {step!r}", kind="invalid_variable"
        )
    raise TemplateRenderError(
        f"{{{{ {text} }}}}: {where} is {_kind(value)}, not an object", kind="invalid_variable"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return type(value).__name__


def render_value(value: Any) -> str:
    """How a resolved value appears in the rendered text: strings as they are, else JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text interleaved with variables."""

    source: str
    parts: tuple[str | Variable, ...]

    @property
    def variables(self) -> tuple[Variable, ...]:
        """Every variable, in order of appearance."""
        return tuple(p for p in self.parts if isinstance(p, Variable))

    def render(self, sample: Mapping[str, Any], item: Mapping[str, Any]) -> str:
        """Substitute every variable. Raises ``TemplateRenderError`` on the first missing one."""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        out: list[str] = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else render_value(part.resolve(sample, item)))
        return "".join(out)


def parse_template(source: str) -> Template:
    """Parse a template string.

    Raises:
        TemplateSyntaxError: A ``{{`` without ``}}``, an unknown namespace (only ``sample`` and
            ``item`` exist), an unknown ``sample`` field, or an expression that is not a path.
    """
    parts: list[str | Variable] = []
    pos = 0
    while True:
        start = source.find(_OPEN, pos)
        if start < 0:
            break
        end = source.find(_CLOSE, start + 2)
        if end < 0:
            raise TemplateSyntaxError(
                f"'{{{{' at character {start} is never closed with '}}}}': "
                f"write {{{{ item.field }}}} or remove the braces"
            )
        if start > pos:
            parts.append(source[pos:start])
        parts.append(_parse_expression(source[start + 2 : end], start))
        pos = end + 2
    if pos < len(source):
        parts.append(source[pos:])
    return Template(source=source, parts=tuple(parts) or ("",))


def _parse_expression(raw: str, offset: int) -> Variable:
    text = raw.strip()
    if not text:
        raise TemplateSyntaxError(f"empty '{{{{ }}}}' at character {offset}: name a variable")
    head = _IDENT.match(text)
    if head is None:
        raise TemplateSyntaxError(
            f"malformed template expression {{{{ {text} }}}} at character {offset}: "
            "expected sample.<field> or item.<field>"
        )
    namespace = head.group(0)
    if namespace not in NAMESPACES:
        raise TemplateSyntaxError(
            f"unknown template namespace {namespace!r} in {{{{ {text} }}}}: "
            "only 'sample' and 'item' exist (e.g. {{ sample.output_text }}, {{ item.answer }})"
        )
    path: list[str | int] = []
    rest = text[head.end() :]
    while rest.strip():
        rest = rest.lstrip()
        dot = _DOT_KEY.match(rest)
        if dot:
            key = dot.group(1)
            path.append(key)
            rest = rest[dot.end() :]
            continue
        index = _INDEX.match(rest)
        if index:
            number, dq, sq = index.groups()
            if number is not None:
                path.append(int(number))
            else:
                path.append(_unescape(dq if dq is not None else sq))
            rest = rest[index.end() :]
            continue
        raise TemplateSyntaxError(
            f"malformed template expression {{{{ {text} }}}} at character {offset}: "
            f'cannot read {rest!r}; use .field, [0] or ["field"]'
        )
    if namespace == "sample":
        if not path or not isinstance(path[0], str):
            raise TemplateSyntaxError(
                f"{{{{ {text} }}}} names no sample field: use one of {', '.join(SAMPLE_FIELDS)}"
            )
        if path[0] not in SAMPLE_FIELDS:
            raise TemplateSyntaxError(
                f"unknown sample field {path[0]!r} in {{{{ {text} }}}}: "
                f"use one of {', '.join(SAMPLE_FIELDS)}"
            )
    return Variable(namespace=namespace, path=tuple(path), text=text)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
