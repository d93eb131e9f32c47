"""A safe parser and evaluator for ``multi.calculate_output``.

The grammar is OpenAI's documented one (reference/openai_azure.md §2.7): numbers, grader keys,
``+ - * / ^``, parentheses and the functions ``min max abs floor ceil exp sqrt log``. Anything
else (attribute access, other calls, strings, ``__import__``) is a syntax error when the grader
is built. Nothing is ever passed to ``eval``: the formula becomes a small tree of tuples, and
evaluation walks it with ``math`` functions.

Choices where OpenAI documents nothing (all are listed in docs/graders.md):
- ``^`` is power and right-associative; unary minus binds looser (``-2^2 == -4``).
- ``min``/``max`` take one or more arguments; ``log`` is the natural log.
- A constant exponent above ``MAX_EXPONENT`` is rejected at build time, after folding constant
  sub-expressions (``2^(50+50)`` is ``2^100``); at run time an overflow, a division by zero, a
  domain error or a non-finite result fails closed (error ``formula``).
- Size limits are checked at build time, so a formula that builds also evaluates: at most
  ``MAX_FORMULA_LENGTH`` characters, ``MAX_DEPTH`` nested parentheses or functions,
  ``MAX_TERMS`` numbers and names, and a tree ``MAX_TREE_DEPTH`` deep (evaluation recurses).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_FORMULA_LENGTH",
    "MAX_TERMS",
    "MAX_TREE_DEPTH",
    "Formula",
    "FormulaError",
    "FormulaSyntaxError",
    "parse_formula",
]

MAX_FORMULA_LENGTH = 2000
MAX_DEPTH = 64
MAX_TERMS = 100  # numbers and names; real formulas combine a handful of graders
MAX_TREE_DEPTH = 256  # evaluation recurses once per level: far below Python's stack limit
MAX_EXPONENT = 64.0

_FUNCTIONS: dict[str, tuple[Callable[..., float], int | None]] = {
    # name: (implementation, arity or None for "one or more")
    "min": (lambda *xs: min(xs), None),  # min(x) of one number is that number
    "max": (lambda *xs: max(xs), None),
    "abs": (abs, 1),
    "floor": (lambda x: float(math.floor(x)), 1),
    "ceil": (lambda x: float(math.ceil(x)), 1),
    "exp": (math.exp, 1),
    "sqrt": (math.sqrt, 1),
    "log": (math.log, 1),
}

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/^(),])"
    r")"
)

Node = tuple[Any, ...]


class FormulaSyntaxError(ValueError):
    """``calculate_output`` is not a valid formula. ``str()`` says where and what is allowed."""


class FormulaError(ArithmeticError):
    """Evaluation failed (division by zero, overflow, domain error, non-finite result)."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula. ``names`` are the grader keys it reads."""

    source: str
    tree: Node
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Compute the formula. Raises ``FormulaError``; never evaluates Python code."""
        try:
            result = _eval(self.tree, values)
        except (ZeroDivisionError, OverflowError, ValueError) as exc:
            raise FormulaError(f"{self.source!r}: {exc}") from None
        if not math.isfinite(result):
            raise FormulaError(f"{self.source!r} evaluated to {result}")
        return result


def parse_formula(source: str, *, names: set[str] | frozenset[str] | None = None) -> Formula:
    """Parse ``calculate_output``.

    Args:
        source: The formula text.
        names: The allowed variable names (the multi grader's keys); ``None`` allows any.

    Raises:
        FormulaSyntaxError: With the position and the allowed vocabulary.
    """
    if not source.strip():
        raise FormulaSyntaxError("calculate_output is empty: write e.g. '0.5 * a + 0.5 * b'")
    if len(source) > MAX_FORMULA_LENGTH:
        raise FormulaSyntaxError(
            f"calculate_output is {len(source)} characters; the limit is {MAX_FORMULA_LENGTH}"
        )
    parser = _Parser(source, _tokenize(source), names)
    tree = parser.expression(0)
    if parser.pos < len(parser.tokens):
        kind, text, at = parser.tokens[parser.pos]
        raise FormulaSyntaxError(f"unexpected {text!r} at character {at} in {source!r}")
    _check_size(tree)
    return Formula(source=source, tree=tree, names=frozenset(parser.used))


def _tokenize(source: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            at = len(source) - len(source[pos:].lstrip())
            raise FormulaSyntaxError(
                f"character {source[at]!r} at {at} is not allowed in {source!r}: use numbers, "
                "grader keys, + - * / ^, parentheses and min max abs floor ceil exp sqrt log"
            )
        kind = match.lastgroup or ""
        text = match.group(kind)
        tokens.append((kind, text, match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(
        self,
        source: str,
        tokens: list[tuple[str, str, int]],
        names: set[str] | frozenset[str] | None,
    ) -> None:
        self.source = source
        self.tokens = tokens
        self.pos = 0
        self.names = names
        self.used: set[str] = set()

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, text: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "op" and token[1] == text:
            self.pos += 1
            return True
        return False

    def _fail(self, what: str) -> FormulaSyntaxError:
        token = self._peek()
        where = f"{token[1]!r} at character {token[2]}" if token else "the end"
        return FormulaSyntaxError(f"expected {what} but found {where} in {self.source!r}")

    def _depth(self, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise FormulaSyntaxError(f"calculate_output nests deeper than {MAX_DEPTH} levels")
        return depth + 1

    # expression := term (("+" | "-") term)*
    def expression(self, depth: int) -> Node:
        depth = self._depth(depth)
        node = self.term(depth)
        while True:
            if self._take("+"):
                node = ("bin", "+", node, self.term(depth))
            elif self._take("-"):
                node = ("bin", "-", node, self.term(depth))
            else:
                return node

    # term := unary (("*" | "/") unary)*
    def term(self, depth: int) -> Node:
        node = self.unary(depth)
        while True:
            if self._take("*"):
                node = ("bin", "*", node, self.unary(depth))
            elif self._take("/"):
                node = ("bin", "/", node, self.unary(depth))
            else:
                return node

    # unary := ("-" | "+") unary | power
    def unary(self, depth: int) -> Node:
        depth = self._depth(depth)
        if self._take("-"):
            return ("neg", self.unary(depth))
        if self._take("+"):
            return self.unary(depth)
        return self.power(depth)

    # power := atom ("^" unary)?     right-associative through unary -> power
    def power(self, depth: int) -> Node:
        base = self.atom(depth)
        if self._take("^"):
            exponent = self.unary(depth)
            constant = _constant(exponent)
            if constant is not None and abs(constant) > MAX_EXPONENT:
                raise FormulaSyntaxError(
                    f"exponent {constant:g} in {self.source!r} is larger than {MAX_EXPONENT:g}: "
                    "scores are small numbers, so a huge power is a mistake or an attack"
                )
            return ("bin", "^", base, exponent)
        return base

    def atom(self, depth: int) -> Node:
        token = self._peek()
        if token is None:
            raise self._fail("a number, a grader key or '('")
        kind, text, at = token
        if kind == "num":
            self.pos += 1
            return ("num", float(text))
        if kind == "op" and text == "(":
            self.pos += 1
            node = self.expression(depth)
            if not self._take(")"):
                raise self._fail("')'")
            return node
        if kind == "name":
            self.pos += 1
            if self._take("("):
                return self._call(text, at, depth)
            if text in _FUNCTIONS:
                raise FormulaSyntaxError(f"function {text!r} at character {at} needs (arguments)")
            if self.names is not None and text not in self.names:
                known = ", ".join(sorted(self.names)) or "none"
                raise FormulaSyntaxError(
                    f"unknown name {text!r} at character {at} in {self.source!r}: "
                    f"calculate_output may use the grader keys ({known})"
                )
            self.used.add(text)
            return ("var", text)
        raise self._fail("a number, a grader key or '('")

    def _call(self, name: str, at: int, depth: int) -> Node:
        if name not in _FUNCTIONS:
            raise FormulaSyntaxError(
                f"function {name!r} at character {at} is not allowed in {self.source!r}: "
                f"use {', '.join(_FUNCTIONS)}"
            )
        args = [self.expression(depth)]
        while self._take(","):
            args.append(self.expression(depth))
        if not self._take(")"):
            raise self._fail("',' or ')'")
        arity = _FUNCTIONS[name][1]
        if arity is not None and len(args) != arity:
            raise FormulaSyntaxError(f"{name}() at character {at} takes {arity} argument(s)")
        return ("call", name, tuple(args))


def _children(node: Node) -> tuple[Node, ...]:
    tag = node[0]
    if tag == "neg":
        return (node[1],)
    if tag == "bin":
        return (node[2], node[3])
    if tag == "call":
        return tuple(node[2])
    return ()


def _check_size(tree: Node) -> None:
    """Refuse trees evaluation could not walk: too many terms, or too deep (walked iteratively)."""
    terms, deepest = 0, 0
    stack: list[tuple[Node, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        terms += node[0] in ("num", "var")
        stack.extend((child, depth + 1) for child in _children(node))
    if terms > MAX_TERMS:
        raise FormulaSyntaxError(
            f"calculate_output has {terms} numbers and names; the limit is {MAX_TERMS}: a formula "
            "combines a few graders, so compute long sums inside a python grader"
        )
    if deepest > MAX_TREE_DEPTH:
        raise FormulaSyntaxError(
            f"calculate_output nests {deepest} levels deep; the limit is {MAX_TREE_DEPTH}"
        )


def _has_var(node: Node) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if current[0] == "var":
            return True
        stack.extend(_children(current))
    return False


def _constant(node: Node) -> float | None:
    """The value of a subtree without variables (folded), or None when it has one.

    Folding that overflows counts as infinitely large, so ``2^(2^64)`` is refused too; other
    arithmetic errors (``1/0``) are left for run time, where they fail closed.
    """
    if _has_var(node):
        return None
    try:
        return _eval(node, {})
    except OverflowError:
        return math.inf
    except (ZeroDivisionError, ValueError, RecursionError):
        return None


def _eval(node: Node, values: Mapping[str, float]) -> float:
    tag = node[0]
    if tag == "num":
        return float(node[1])
    if tag == "var":
        return float(values[node[1]])
    if tag == "neg":
        return -_eval(node[1], values)
    if tag == "bin":
        left = _eval(node[2], values)
        right = _eval(node[3], values)
        op = node[1]
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        # math.pow raises (not complex) on a negative base with a fractional exponent
        return math.pow(left, right)
    if tag == "call":
        fn = _FUNCTIONS[node[1]][0]
        return float(fn(*(_eval(arg, values) for arg in node[2])))
    raise AssertionError(f"unknown formula node {tag!r}")  # pragma: no cover
