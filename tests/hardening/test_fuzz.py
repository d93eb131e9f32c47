"""Property-based fuzzing of every file loader and CLI entry point: no traceback, bounded cost.

Each property feeds generated files (valid shapes with wrong types, byte-level damage, odd
encodings, deep nesting, lone surrogates) to a loader or an ``rlft`` command and asserts the only
outcomes are success or an ``RLFTError`` (a one-line CLI error with a non-zero exit), within the
time and memory budget of ``hardening_helpers.bounded``. Example counts are small so the whole
module runs in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import FUZZ, bounded, cli, examples
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import rlft
from rlft._config import build_settings, load_config
from rlft._jobfile import load_job_file
from rlft.cli._graders import _samples_and_items
from rlft.datasets import Dataset, check_file
from rlft.exceptions import RLFTError, UsageError

ROW = {"messages": [{"role": "user", "content": "hi"}], "label": "a"}
GRADER = {
    "type": "string_check",
    "name": "g",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.label }}",
    "operation": "eq",
}

# --- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=16,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "developer", "tool", "?"])},
        optional={"content": st.text(max_size=30) | json_values, "name": json_values},
    ),
    max_size=3,
)
rows = st.fixed_dictionaries(
    {"messages": messages | json_values},
    optional={"label": json_values, "tools": json_values, "reference_answer": json_values},
)


@st.composite
def damaged(draw: st.DrawFn, text: str, deepest: int = 5_000) -> bytes:
    """``text`` as UTF-8, then maybe damaged the ways real files are (nesting up to
    ``deepest``)."""
    data = text.encode("utf-8")
    how = draw(
        st.sampled_from(
            [
                "none",
                "latin1",
                "utf16",
                "bom",
                "insert",
                "truncate",
                "nul",
                "crlf",
                "surrogate",
                "deep",
                "very-deep",
                "wrap-deep",
                "nan",
                "long-line",
            ]
        )  # fmt: skip
    )
    if how == "latin1":
        data = text.encode("latin-1", errors="replace") + "\u00e9\n".encode("latin-1")
    elif how == "utf16":
        data = text.encode("utf-16")
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "nul":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" + data[at:]
    elif how == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif how == "surrogate":
        code = draw(st.integers(0xD800, 0xDFFF))
        data += b'{"messages": [{"role": "user", "content": "x\\u%04x"}], "k": 1}\n' % code
    elif how == "deep":
        depth = draw(st.integers(50, min(900, deepest)))
        data += b'{"messages": ' + b"[" * depth + b"]" * depth + b"}\n"
    elif how == "very-deep":
        data += b"[" * deepest + b"]" * deepest + b"\n"
    elif how == "wrap-deep":  # the whole value inside JSON/TOML/YAML flow arrays
        depth = draw(st.sampled_from([d for d in (70, 900, 5_000) if d <= deepest]))
        data = b"[" * depth + data + b"]" * depth
    elif how == "nan":
        data += b'{"messages": [], "x": NaN}\n'
    elif how == "long-line":
        data += b'{"messages": "' + b"x" * 20_000 + b'"}\n'
    return data


@st.composite
def jsonl_files(draw: st.DrawFn, lines: st.SearchStrategy[Any] = rows | json_values) -> bytes:
    values = draw(st.lists(lines, max_size=5))
    ascii_only = draw(st.booleans())
    text = "".join(json.dumps(v, ensure_ascii=ascii_only) + "\n" for v in values)
    return draw(damaged(text))


def toml_value(value: Any) -> str:
    """``value`` as a TOML inline value (strings, numbers, booleans, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if (
            math.isinf(value)
        ) else repr(value)  # fmt: skip
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # a date


def toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


toml_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
JOB_KEYS = [
    "name",
    "model",
    "train",
    "validation",
    "grader",
    "hyperparameters",
    "labels",
    "response_format",
]


@st.composite
def job_files(draw: st.DrawFn) -> bytes:
    table: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from([*JOB_KEYS, "epochs"]), toml_values, max_size=5)
    )
    # Often right where it matters, so the loader gets past the first check.
    if draw(st.booleans()):
        table.setdefault("train", "train.jsonl")
        table.setdefault("grader", draw(st.sampled_from(["grader.json", GRADER])))
    if draw(st.booleans()):
        table["hyperparameters"] = draw(
            st.dictionaries(
                st.sampled_from(["epochs", "batch_size", "seed", "provider_options", "x"]),
                toml_values,
                max_size=3,
            )
        )
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
    return draw(damaged(text))


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    table: dict[str, Any] = draw(
        st.dictionaries(
            st.sampled_from(["provider", "profiles", "fake", "local", "openai", "x"]),
            toml_values,
            max_size=4,
        )
    )
    if draw(st.booleans()):
        table["profiles"] = {"prod": draw(st.dictionaries(st.sampled_from(
            ["provider", "fake", "x"]), toml_values, max_size=2))}  # fmt: skip
    if draw(st.booleans()):
        table["fake"] = draw(
            st.dictionaries(st.sampled_from(["steps", "api_key", "state_dir", "x"]), toml_values)
        )
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
    return draw(damaged(text))


grader_dicts = st.fixed_dictionaries(
    {"type": st.sampled_from(["string_check", "text_similarity", "multi", "score_model", "?"])},
    optional={
        "name": json_values,
        "input": st.sampled_from(["{{ sample.output_text }}", "{{ item.", "{{ x }}"]) | json_values,
        "reference": json_values,
        "operation": st.sampled_from(["eq", "ne", "like", "ilike", "?"]) | json_values,
        "evaluation_metric": st.sampled_from(["rouge_l", "bleu", "fuzzy_match", "?"]),
        "graders": json_values,
        "calculate_output": st.text(max_size=30) | json_values,
    },
)

# --- the properties -----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    (tmp_path / "grader.json").write_text(json.dumps(GRADER))
    (tmp_path / "samples.jsonl").write_text('"a"\n')
    (tmp_path / "rlft.toml").write_text(
        f'provider = "fake"\n[fake]\nstate_dir = "{tmp_path / "state"}"\n'
    )
    return tmp_path


def only_rlft_errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; success or an ``RLFTError`` is fine, anything else fails the property."""
    with bounded():
        try:
            return fn(*args, **kwargs)
        except RLFTError as exc:
            assert str(exc).strip()
            return exc


@settings(FUZZ, max_examples=examples(40))
@given(data=jsonl_files())
def test_the_dataset_loader_and_checker_never_crash(project: Path, data: bytes) -> None:
    path = project / "fuzz.jsonl"
    path.write_bytes(data)
    with bounded():
        report = check_file(path)  # documented never to raise for content
    assert report.problems or report.ok
    loaded = only_rlft_errors(Dataset.from_jsonl, path)
    assert isinstance(loaded, Dataset | RLFTError)


@settings(FUZZ, max_examples=examples(12))
@given(data=jsonl_files())
def test_rlft_validate_never_prints_a_traceback(project: Path, data: bytes) -> None:
    path = project / "fuzz.jsonl"
    path.write_bytes(data)
    with bounded():
        result = cli("validate", path)
    assert result.exit_code in (0, 1, 2)


@settings(FUZZ, max_examples=examples(40))
@given(samples=jsonl_files(json_values), items=jsonl_files())
def test_the_samples_and_items_loader_never_crashes(
    project: Path, samples: bytes, items: bytes
) -> None:
    (project / "s.jsonl").write_bytes(samples)
    (project / "i.jsonl").write_bytes(items)
    for items_path in (None, project / "i.jsonl"):
        with bounded():
            try:
                _samples_and_items(project / "s.jsonl", items_path)
            except UsageError as exc:
                assert "\n" not in str(exc) and str(project) in str(exc)


@settings(FUZZ, max_examples=examples(12))
@given(samples=jsonl_files(json_values), items=jsonl_files(), as_json=st.booleans())
def test_rlft_grade_never_prints_a_traceback(
    project: Path, samples: bytes, items: bytes, as_json: bool
) -> None:
    (project / "s.jsonl").write_bytes(samples)
    (project / "i.jsonl").write_bytes(items)
    flags = ["--json"] if as_json else []
    with bounded():
        result = cli("grade", project / "grader.json", "--samples", project / "s.jsonl",
                     "--items", project / "i.jsonl", *flags)  # fmt: skip
    assert result.exit_code in (0, 2), result.output


@settings(FUZZ, max_examples=examples(10))
@given(items=jsonl_files())
def test_rlft_grader_probe_never_prints_a_traceback(project: Path, items: bytes) -> None:
    (project / "i.jsonl").write_bytes(items)
    with bounded():
        result = cli("grader", "probe", project / "grader.json", "--items", project / "i.jsonl",
                     "--json")  # fmt: skip
    assert result.exit_code in (0, 1, 2), result.output


@settings(FUZZ, max_examples=examples(60))
@given(data=job_files())
def test_the_job_file_loader_never_crashes(project: Path, data: bytes) -> None:
    path = project / "job.toml"
    path.write_bytes(data)
    result = only_rlft_errors(load_job_file, path)
    if isinstance(result, RLFTError) and not hasattr(result, "report"):
        assert "\n" not in str(result), str(result)  # one line (a dataset report lists many)


@settings(FUZZ, max_examples=examples(12))
@given(data=job_files())
def test_rlft_run_never_prints_a_traceback(project: Path, data: bytes) -> None:
    path = project / "job.toml"
    path.write_bytes(data)
    with bounded():
        result = cli("run", path, "--no-preflight", "--detach", "--json", cwd=project)
    assert result.exit_code in (0, 1, 2), result.output


@settings(FUZZ, max_examples=examples(40))
@given(data=config_files(), profile=st.sampled_from([None, "prod", "nope"]))
def test_the_config_loader_never_crashes(project: Path, data: bytes, profile: str | None) -> None:
    path = project / "cfg.toml"
    path.write_bytes(data)
    config = only_rlft_errors(load_config, environ={"RLFT_CONFIG": str(path)}, profile=profile)
    if isinstance(config, RLFTError):
        return
    client = rlft.Client(autoload=False)
    for spec in client.provider_specs():
        if spec.name in ("fake", "local", "openai"):
            only_rlft_errors(build_settings, spec, config, environ={})


@settings(FUZZ, max_examples=examples(8))
@given(data=config_files())
def test_rlft_providers_never_prints_a_traceback(
    project: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project / "cfg.toml"
    path.write_bytes(data)
    monkeypatch.setenv("RLFT_CONFIG", str(path))
    with bounded():
        result = cli("providers", "--json")
    assert result.exit_code in (0, 2), result.output


@st.composite
def grader_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".json", ".yaml"]))
    value = draw(grader_dicts | json_values)
    if suffix == ".json":
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    else:
        import yaml

        text = yaml.safe_dump(value, allow_unicode=draw(st.booleans()))
    # PyYAML's pure-Python parser spends seconds on 1,000+ levels before any limit can refuse
    # them; 100 is past the 64-level limit and keeps this property fast.
    return suffix, draw(damaged(text, deepest=5_000 if suffix == ".json" else 100))


# No shrinking: shrinking through PyYAML's slow deep nesting would cost minutes per failure.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@settings(FUZZ, max_examples=examples(40), phases=NO_SHRINK)
@given(file=grader_files())
def test_the_grader_file_loader_never_crashes(project: Path, file: tuple[str, bytes]) -> None:
    suffix, data = file
    path = project / f"fuzz{suffix}"
    path.write_bytes(data)
    only_rlft_errors(rlft.graders.load, path)


@settings(FUZZ, max_examples=examples(10), phases=NO_SHRINK)
@given(file=grader_files())
def test_rlft_grade_with_a_fuzzed_grader_never_prints_a_traceback(
    project: Path, file: tuple[str, bytes]
) -> None:
    suffix, data = file
    path = project / f"fuzz{suffix}"
    path.write_bytes(data)
    with bounded():
        result = cli("grade", path, "--samples", project / "samples.jsonl", "--json")
    assert result.exit_code in (0, 2), result.output


# --- the reader's fast paths agree with the exact walk ------------------------------------------

nested = st.recursive(
    st.integers(0, 3) | st.text(max_size=3),
    lambda kids: (
        st.lists(kids, max_size=2) | st.dictionaries(st.text(max_size=2), kids, max_size=2)
    ),
    max_leaves=200,
)


@settings(FUZZ, max_examples=examples(200))
@given(value=nested, limit=st.integers(1, 8))
def test_the_fast_depth_check_agrees_with_the_walk(value: Any, limit: int) -> None:
    from rlft._limits import deeper_than, find_problem_value

    found = find_problem_value(value, max_depth=limit)
    walked = found is not None and found[0] == "too-deep"
    assert deeper_than(value, limit) == walked


surrogate_texts = st.lists(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    | st.characters()
    | st.sampled_from(["\U0001f600", "\\", "\\u", '"']),
    max_size=8,
).map("".join)


@settings(FUZZ, max_examples=examples(200))
@given(text=surrogate_texts)
def test_every_lone_surrogate_is_caught_and_no_pair_is(project: Path, text: str) -> None:
    from rlft._limits import LONE_SURROGATE
    from rlft.datasets._reader import read_jsonl

    path = project / "s.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=True)
    path.write_text(line + "\n", encoding="ascii")
    (event,) = list(read_jsonl(path, file="s.jsonl"))
    flagged = getattr(event, "code", None) == "lone-surrogate"
    decoded = json.loads(line)["messages"][0]["content"]  # a high+low pair decodes to one char
    assert flagged == bool(LONE_SURROGATE.search(decoded))
