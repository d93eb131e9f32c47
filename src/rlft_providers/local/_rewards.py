"""The one seam between the job's neutral grader and TRL: rows in, reward functions out.

Imported by the worker only. The reward function is ``rlft.graders.compile(grader, "trl")``, the
same engine ``grader.grade()`` and ``rlft grade`` run, so a score here matches a score there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ITEM_COLUMN", "ErrorTally", "reward_functions", "trainer_rows"]

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


class ErrorTally:
    """The compiled reward function, keeping each failed grade's reason until the worker asks.

    The reward function reports reasons through TRL's ``log_extra`` (a ``<grader>_error``
    column, "" for a grade that succeeded); this wrapper counts them on the way, so a step's
    metrics event can quote its most common error. Everything else passes through.
    """

    def __init__(self, function: Any) -> None:
        self.function = function
        self.__name__: str = function.__name__  # TRL names the reward metrics after it
        self._column = f"{self.__name__}_error"
        self._reasons: Counter[str] = Counter()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = kwargs.get("log_extra")

        def log_extra(column: str, values: list[Any]) -> None:
            if column == self._column:
                self._reasons.update(str(v) for v in values if v)
            if callable(forward):
                forward(column, values)

        kwargs["log_extra"] = log_extra
        return self.function(*args, **kwargs)

    def take(self) -> tuple[str, int] | None:
        """The most common reason since the last call, and how often it came; then forget."""
        reasons, self._reasons = self._reasons, Counter()
        return reasons.most_common(1)[0] if reasons else None


def reward_functions(grader_data: Mapping[str, Any]) -> list[ErrorTally]:
    """The job grader as TRL reward functions (one: the grader, multi graders included)."""
    from rlft import graders

    grader = graders.from_openai(dict(grader_data))
    return [ErrorTally(graders.compile(grader, "trl", item_column=ITEM_COLUMN))]
