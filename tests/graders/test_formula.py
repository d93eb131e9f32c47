"""multi.calculate_output: a safe parser, never eval; injections fail at build time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlft import graders as g
from rlft.exceptions import GraderValidationError
from rlft.graders._runtime.formula import FormulaError, FormulaSyntaxError, parse_formula

pytestmark = pytest.mark.anyio

VALUES = {"a": 0.5, "b": 0.25, "c": 4.0}


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("a + b", 0.75),
        ("0.8 * a + 0.2 * b", 0.45),
        ("a + b * c", 1.5),  # * before +
        ("(a + b) * c", 3.0),
        ("c / 2 / 2", 1.0),  # left-associative
        ("2 ^ 3 ^ 2", 512.0),  # right-associative power
        ("-2 ^ 2", -4.0),  # unary minus binds looser than ^
        ("--a", 0.5),
        ("+a", 0.5),
        ("min(a, b)", 0.25),
        ("max(a, b, c)", 4.0),
        ("min(a)", 0.5),
        ("abs(b - a)", 0.25),
        ("floor(c / 3)", 1.0),
        ("ceil(a)", 1.0),
        ("sqrt(c)", 2.0),
        ("exp(0)", 1.0),
        ("log(exp(2))", 2.0),  # natural log
        ("1e-1 * c", 0.4),
        (".5 + a", 1.0),
        ("  a  ", 0.5),
    ],
)
def test_evaluates(formula: str, expected: float) -> None:
    assert parse_formula(formula, names=set(VALUES)).evaluate(VALUES) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("__import__('os').system('id')", "not allowed"),
        ("a.__class__", "not allowed"),
        ("eval('1')", "not allowed"),
        ("open(a)", "function 'open'"),
        ("a if b else c", "unexpected 'if'"),
        ("a > b", "not allowed"),
        ("[a, b]", "not allowed"),
        ("lambda: 1", "unexpected ':'|not allowed"),
        ("a; b", "not allowed"),
        ("2 ^ 1000", "larger than 64"),
        ("a ^ -99", "larger than 64"),
        ("d + a", "unknown name 'd'"),
        ("a +", "expected a number"),
        ("(a + b", "expected"),
        ("min()", "expected a number"),
        ("sqrt(a, b)", "takes 1 argument"),
        ("sqrt", "needs \\(arguments\\)"),
        ("", "empty"),
        ("a" + " + a" * 2000, "limit is"),
        ("(" * 100 + "a" + ")" * 100, "nests deeper"),
        ("a b", "unexpected 'b'"),
    ],
)
def test_rejected_when_parsed(formula: str, message: str) -> None:
    with pytest.raises(FormulaSyntaxError, match=message):
        parse_formula(formula, names=set(VALUES))


@pytest.mark.parametrize(
    "formula", ["a / (b - b)", "sqrt(b - a)", "log(b - b)", "exp(c * 1000)", "(b - a) ^ 0.5"]
)
def test_runtime_failures_raise_formula_error(formula: str) -> None:
    with pytest.raises(FormulaError):
        parse_formula(formula, names=set(VALUES)).evaluate(VALUES)


def test_formula_injection_is_refused_when_the_grader_is_built() -> None:
    sub = g.StringCheck(name="x", input="{{ sample.output_text }}", reference="y", operation="eq")
    with pytest.raises(GraderValidationError, match="not allowed") as info:
        g.Multi(name="m", graders={"x": sub}, calculate_output="x + __import__('os').getpid()")
    assert info.value.path == "calculate_output"


async def test_a_runtime_formula_error_fails_closed_in_the_engine() -> None:
    sub = g.StringCheck(name="x", input="{{ sample.output_text }}", reference="y", operation="eq")
    grader = g.Multi(name="m", graders={"x": sub}, calculate_output="1 / x")
    result = await grader.grade("not y")  # x = 0 -> division by zero
    assert (result.score, result.errors) == (0.0, ("formula",))
    assert "division by zero" in (result.reason or "")
    ok = await grader.grade("y")
    assert ok.score == 1.0 and ok.ok


def test_parsed_formula_names_are_the_keys_it_reads() -> None:
    assert parse_formula("min(a, 1) + exp(b)").names == {"a", "b"}
    assert math.isclose(parse_formula("2 ^ 0.5").evaluate({}), math.sqrt(2))


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("2^(50+50)", "exponent 100 .* larger than 64"),  # constant exponents are folded
        ("a ^ (8 * 9)", "exponent 72"),
        ("2 ^ (2 ^ 64)", "larger than 64"),  # folding overflows past any limit
        ("a ^ -(30 + 40)", "exponent -70"),
        ("a ^ max(1, 65)", "exponent 65"),
    ],
)
def test_constant_exponents_are_folded_before_the_limit(formula: str, message: str) -> None:
    with pytest.raises(FormulaSyntaxError, match=message):
        parse_formula(formula, names=set(VALUES))


def test_exponents_within_the_limit_and_variable_exponents_still_build() -> None:
    assert parse_formula("2 ^ (30 + 34)").evaluate({}) == 2.0**64
    assert parse_formula("a ^ (c + 100)", names=set(VALUES)).names == {"a", "c"}


def test_a_thousand_term_formula_is_refused_when_the_grader_is_built() -> None:
    sub = g.StringCheck(name="x", input="{{ sample.output_text }}", reference="y", operation="eq")
    with pytest.raises(GraderValidationError, match="1000 numbers and names; the limit is 100"):
        g.Multi(name="m", graders={"x": sub}, calculate_output="+".join(["x"] * 1000))


async def test_the_longest_formula_that_builds_also_grades() -> None:
    sub = g.StringCheck(name="x", input="{{ sample.output_text }}", reference="y", operation="eq")
    formula = "-".join(["x"] * 100)  # 100 terms: the limit, and 100 levels deep
    result = await g.Multi(name="m", graders={"x": sub}, calculate_output=formula).grade("y")
    assert (result.score, result.errors) == (-98.0, ())


TOKENS = st.sampled_from(["a", "b", "2", "+", "-", "*", "/", "^", "(", ")"])


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab012.+-*/^(), minaxlogsqrtep", max_size=120)
    | st.lists(TOKENS, max_size=400).map("".join)
)
def test_any_formula_text_builds_or_is_refused_and_what_builds_evaluates(source: str) -> None:
    try:
        formula = parse_formula(source, names={"a", "b"})
    except FormulaSyntaxError:
        return
    try:
        value = formula.evaluate({"a": 0.5, "b": 2.0})
    except FormulaError:
        return  # fails closed at grade time: division by zero, overflow, domain
    assert math.isfinite(value)
