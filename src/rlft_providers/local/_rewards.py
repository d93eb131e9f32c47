"""The one seam between the job's neutral grader and TRL: rows in, reward functions out.

Imported by the worker only. The reward function is ``rlft.graders.compile(grader, "trl")``, the
same engine ``grader.grade()`` and ``rlft grade`` run, so a score here matches a score there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ITEM_COLUMN", "reward_functions", "trainer_rows"]

ITEM_COLUMN = "rlft_item"
"""Each row's item fields, as one JSON string column.

A Hugging Face dataset types each column from its values, so item fields that differ in shape
from row to row (a number here, a string there; objects with different keys) would fail or be
padded with nulls. One JSON string per row keeps every item exactly as written.
"""


def trainer_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``to_trl_rows`` rows (``{"prompt": messages, **item}``) as ``{"prompt", "rlft_item"}``."""
    return [
        {
            "prompt": row["prompt"],
            ITEM_COLUMN: json.dumps({k: v for k, v in row.items() if k != "prompt"}),
        }
        for row in rows
    ]


def reward_functions(grader_data: Mapping[str, Any]) -> list[Any]:
    """The job grader as TRL reward functions (one: the grader, multi graders included)."""
    from rlft import graders

    grader = graders.from_openai(dict(grader_data))
    return [graders.compile(grader, "trl", item_column=ITEM_COLUMN)]
