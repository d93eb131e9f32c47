"""Hostile and broken grader files: one clear line (file, line, field, fix), bounded work.

Issue 15 item 3: binary, Latin-1 and deeply nested grader files, a billion-laughs YAML inside a
native grader's payload, and field errors that point at the line.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlft import graders as g
from rlft.cli._graders import grader as grader_cli
from rlft.exceptions import GraderValidationError, UsageError
from rlft.graders._load import MAX_GRADER_NODES

BILLION_LAUGHS = """\
type: native
name: laughs
target: openai
payload:
  type: string_check
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _refusal(path: Path) -> str:
    with pytest.raises(GraderValidationError) as info:
        g.load(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("binary.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file, not JSON or YAML"),
        (
            "latin1.yaml",
            "type: string_check\nname: caf\xe9\n".encode("latin-1"),
            ":2: byte 0xe9 at column 10 is not UTF-8 (the file looks like Latin-1",
        ),
        ("deep.json", b"[" * 5000 + b"]" * 5000, "nests deeper than 64 levels"),
        ("deep.yaml", b"[" * 5000 + b"]" * 5000, "nests deeper than 64 levels"),
        ("deep100.json", b'{"a": ' * 100 + b"1" + b"}" * 100, "nests deeper than 64 levels"),
        ("self.yaml", b"a: &x [*x]\n", "refers to itself"),
    ],
)
def test_unreadable_files_are_one_line_naming_the_file(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    message = _refusal(path)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_a_billion_laughs_payload_fails_fast_without_expanding(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    tracemalloc.start()
    start = time.perf_counter()
    message = _refusal(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f"expands to more than {MAX_GRADER_NODES:,} values" in message
    assert message.startswith(f"{path}:")  # the line of the node that crossed the limit
    assert elapsed < 2.0 and peak < 20 * 1024 * 1024  # not the 40 s and gigabytes of expanding


def test_shared_python_objects_in_a_native_payload_count_every_use() -> None:
    inner: list[object] = ["lol"] * 10
    for _ in range(6):  # 10**6 values once shared lists are expanded, a few objects in memory
        inner = [inner] * 10
    with pytest.raises(GraderValidationError, match="expands to more than"):
        g.Native(name="n", target="openai", payload={"type": "x", "v": inner})
    with pytest.raises(GraderValidationError, match="expands to more than"):
        g.from_openai({"type": "native", "name": "n", "target": "openai", "payload": {"v": inner}})


def test_yaml_aliases_within_the_limit_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "type: multi\nname: m\ncalculate_output: a + b\ngraders:\n"
        "  a: &check {type: string_check, name: a, input: '{{ sample.output_text }}',"
        " reference: x, operation: eq}\n"
        "  b: *check\n"
    )
    assert set(g.load(path).graders) == {"a", "b"}  # type: ignore[union-attr]


def test_field_errors_name_the_line_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_path = tmp_path / "bad.yaml"
    yaml_path.write_text(
        "type: multi\nname: m\ncalculate_output: label\ngraders:\n  label:\n"
        "    type: string_check\n    name: label\n    input: '{{ sample.output_text }}'\n"
        "    reference: x\n    operation: neq\n"
    )
    message = _refusal(yaml_path)
    assert message.startswith(f"{yaml_path}:10: graders.label.operation: operation 'neq'")
    json_path = tmp_path / "bad.json"
    json_path.write_text(
        '{\n  "type": "string_check",\n  "name": "x",\n  "input": "{{ itme.a }}",\n'
        '  "reference": "b",\n  "operation": "eq"\n}\n'
    )
    assert _refusal(json_path).startswith(f"{json_path}:4: input: unknown template namespace")


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00\x00binary", "name: caf\xe9".encode("latin-1"), b"[" * 5000 + b"]" * 5000],
)
def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "grader.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(grader_cli, ["compile", str(path), "-p", "openai"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=30,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    suffix=st.sampled_from([".json", ".yaml"]),
)
def test_any_bytes_give_a_clear_error_or_a_grader(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    start = time.perf_counter()
    try:
        g.load(path)
    except (GraderValidationError, UsageError) as exc:
        assert str(exc).startswith(str(path)) or "no such" in str(exc)
    assert time.perf_counter() - start < 2.0


def test_several_problems_are_listed_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text('{"type": "string_check", "name": "x", "input": "{{ itme.a }}"}')
    message = _refusal(path)
    assert "\n" not in message
    assert "unknown template namespace" in message and "also reference: required" in message
