"""The batched sandbox path sends a plain answer as its text; the worker rebuilds the sample.

The speed of python graders inside GRPO (issue 14.7) comes from this, so these tests hold the
rebuilt sample equal to the one every other path builds, byte for byte.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlft import graders as g
from rlft.graders._runtime.sample import (
    NotAnObject,
    compact_sample,
    normalize_sample,
    plain_sample,
)
from rlft.graders._sandbox import worker
from rlft.graders._sandbox.pool import SandboxPool

# Texts that are, or look like, each JSON kind, with the whitespace JSON and str disagree on.
EDGES = [
    "",
    "3",
    " 3 ",
    "null",
    "true",
    '"a string"',
    "[1, 2]",
    '{"label": "a"}',
    '  \n{"label": "b", "n": [1, {"x": null}]}\t',
    "{not json",
    "\x0c{}",  # str.lstrip strips a form feed; JSON does not
    '{"a": 1} trailing',
    "Paris",
    "ünïcödé 東京",
    "{}",
]


def as_the_grader_sees_it(sample: dict[str, Any]) -> Any:
    """What crosses the pipe: NotAnObject becomes {} like any dict."""
    return json.loads(json.dumps(sample))


@pytest.mark.parametrize("text", EDGES)
def test_the_worker_rebuilds_exactly_the_plain_sample(text: str) -> None:
    assert worker._plain_sample(text) == as_the_grader_sees_it(plain_sample(text))
    assert list(worker._plain_sample(text)) == list(plain_sample(text))  # same key order


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.builds(json.dumps, st.recursive(st.none() | st.integers() | st.text(), st.lists)),
        st.builds(
            lambda d, pad: pad + json.dumps(d) + pad,
            st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
            st.sampled_from(["", " ", "\n", "\t ", "\r\n"]),
        ),
    )
)
def test_the_worker_rebuilds_any_text_like_normalize_sample(text: str) -> None:
    assert worker._plain_sample(text) == as_the_grader_sees_it(normalize_sample(text))


@pytest.mark.parametrize(
    "sample",
    [
        "plain",
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": '{"a": 1}'}],
        [{"role": "assistant", "content": "role-less turns get a role in TRL's path"}],
    ],
)
def test_plain_answers_compact_to_their_text(sample: Any) -> None:
    text = compact_sample(sample)
    assert isinstance(text, str)
    assert plain_sample(text) == normalize_sample(sample)


@pytest.mark.parametrize(
    "sample",
    [
        [{"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]}],
        [{"role": "assistant", "content": [{"type": "text", "text": "parts"}]}],
        {"output_text": "x", "output_json": {"given": True}},
        {"choices": [{"message": {"role": "assistant", "content": "hi"}}]},
    ],
)
def test_other_shapes_are_sent_whole(sample: Any) -> None:
    assert compact_sample(sample) == normalize_sample(sample)


def test_why_an_output_is_not_an_object_is_still_told_to_templates() -> None:
    for text, why in [
        ("null", "JSON null"),
        ("[1]", "JSON an array"),
        ("plain words", "not valid JSON"),
        ("{broken", "not valid JSON"),
    ]:
        output_json = normalize_sample(text)["output_json"]
        assert isinstance(output_json, NotAnObject) and output_json == {}
        assert why in output_json.why


# A grader that scores a checksum of everything it was given: any difference in the sample a
# path builds changes the score.
FINGERPRINT = g.Python(
    name="fingerprint",
    source=(
        "import json, zlib\n"
        "def grade(sample, item):\n"
        "    seen = json.dumps([sample, item], sort_keys=True)\n"
        "    return zlib.crc32(seen.encode()) / 2**32\n"
    ),
)


def fingerprint(sample: Any, item: Any) -> float:
    seen = json.dumps([sample, item], sort_keys=True)
    return zlib.crc32(seen.encode()) / 2**32


def test_python_graders_see_the_same_sample_in_the_loop_as_anywhere(pool: SandboxPool) -> None:
    completions: list[Any] = [
        *EDGES,
        [{"role": "assistant", "content": "conversational"}],
        [{"content": "no role, as TRL's docs write it"}],
        [{"role": "assistant", "content": "calls", "tool_calls": [{"id": "t", "type": "x"}]}],
    ]
    items = [{"n": index} for index in range(len(completions))]
    reward = g.compile(FINGERPRINT, "trl", pool=pool)
    count = len(completions)
    in_loop = reward(prompts=[[]] * count, completions=completions, n=list(range(count)))
    one_at_a_time = anyio.run(g.grade_many, FINGERPRINT, completions, items)
    assert not reward.failures
    assert in_loop == [result.score for result in one_at_a_time]
    # and both equal the grader run on rlft's own normalised sample, as JSON carries it
    for completion, item, score in zip(completions[: len(EDGES)], items, in_loop, strict=False):
        assert score == fingerprint(as_the_grader_sees_it(normalize_sample(completion)), item)
