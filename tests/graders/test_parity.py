"""One table, three runtimes: grade(), the TRL reward function and the Lambda handler (from the
built zip) give the same score for every (grader, sample, item)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.graders._sandbox.pool import SandboxPool


def check(operation: str, input: str = "{{ sample.output_text }}") -> g.StringCheck:
    return g.StringCheck(name="check", input=input, reference="{{ item.ref }}", operation=operation)  # type: ignore[arg-type]


def similar(metric: str) -> g.TextSimilarity:
    return g.TextSimilarity(
        name="similar",
        input="{{ sample.output_text }}",
        reference="{{ item.ref }}",
        evaluation_metric=metric,  # type: ignore[arg-type]
    )


RATIO = g.Python(
    name="ratio",
    source="def grade(sample, item):\n    return len(sample['output_text']) / item['n']\n",
)
RAISES = g.Python(name="raises", source="def grade(sample, item):\n    return 1 / 0\n")
TRIAGE = g.Multi(
    name="triage",
    graders={
        "label": check("eq", "{{ sample.output_json.label }}"),
        "why": g.TextSimilarity(
            name="why",
            input="{{ sample.output_json.why }}",
            reference="{{ item.why }}",
            evaluation_metric="rouge_1",
        ),
    },
    calculate_output="0.8 * label + 0.2 * why",
)
SAFE_DIV = g.Multi(name="div", graders={"c": check("eq")}, calculate_output="1 / c")

# (id, grader, sample text, item, expected score): expected values are worked out by hand.
TABLE: list[tuple[str, g.BaseGrader, str, dict[str, Any], float]] = [
    (
        "json-eq",
        check("eq", "{{ sample.output_json.label }}"),
        '{"label": "billing"}',
        {"ref": "billing"},
        1.0,
    ),
    ("eq-miss", check("eq"), "Billing", {"ref": "billing"}, 0.0),
    ("ilike", check("ilike"), "IT IS BILLING", {"ref": "billing"}, 1.0),
    ("ne-missing-var", check("ne"), "anything", {"other": "x"}, 0.0),  # fails closed
    ("rouge_l", similar("rouge_l"), "The cat sat on the mat", {"ref": "the cat sat"}, 2 / 3),
    ("fuzzy", similar("fuzzy_match"), "kitten", {"ref": "sitting"}, 8 / 13),  # indel 5 of 13
    (
        "bleu",
        similar("bleu"),
        "the quick brown fox jumps",
        {"ref": "the quick brown fox jumps"},
        1.0,
    ),
    ("gleu", similar("gleu"), "a b c d", {"ref": "a b c e"}, 0.6),  # 6 of 10 n-grams
    ("python", RATIO, "abcd", {"n": 8}, 0.5),
    ("python-raises", RAISES, "abcd", {}, 0.0),
    ("multi", TRIAGE, '{"label": "a", "why": "x y"}', {"ref": "a", "why": "x z"}, 0.9),
    ("multi-sub-fails", TRIAGE, "not json", {"ref": "a", "why": "x"}, 0.0),
    ("formula-error", SAFE_DIV, "no", {"ref": "yes"}, 0.0),
]


@pytest.mark.parametrize(
    ("case", "grader", "sample", "item", "expected"), TABLE, ids=[row[0] for row in TABLE]
)
def test_same_score_everywhere(
    case: str,
    grader: g.BaseGrader,
    sample: str,
    item: dict[str, Any],
    expected: float,
    pool: SandboxPool,
    load_lambda: Callable[..., ModuleType],
) -> None:
    local = anyio.run(lambda: grader.grade(sample, item, pool=pool))

    reward = g.compile(grader, "trl", pool=pool)
    # One TRL batch: a plain completion and a conversational one, each column once per row.
    completions = [sample, [{"role": "assistant", "content": sample}]]
    columns = {key: [value, value] for key, value in item.items()}
    trl_plain, trl_chat = reward(prompts=["q", "q"], completions=completions, **columns)

    handler = load_lambda(grader).lambda_handler
    event = [
        {
            "id": "top",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": sample},
            ],
            **item,
        },
        {
            "id": "meta",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "nova_assistant", "content": sample},
            ],
            "metadata": item,
        },
    ]
    lambda_top, lambda_meta = (row["aggregate_reward_score"] for row in handler(event, None))

    assert local.score == pytest.approx(expected)
    assert [trl_plain, trl_chat, lambda_top, lambda_meta] == [local.score] * 4
