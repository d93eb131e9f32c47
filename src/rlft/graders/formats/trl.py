"""TRL reward functions that run a grader on the local engine.

TRL 1.16's ``GRPOTrainer`` calls each reward function as
``fn(prompts=..., completions=..., completion_ids=..., **columns)`` where ``columns`` holds every
dataset column (one value per completion) plus ``trainer_state``, ``log_extra`` and
``log_metric`` (read from the installed ``trl/trainer/grpo_trainer.py``, ``_calculate_rewards``;
reference/trl_local.md §2). Completions are strings, or for conversational datasets lists of
``{"role": "assistant", "content": ...}`` messages; both are handled, and so are messages with
no ``role`` key (``[{"content": ...}]``, the shape in TRL's reward-function docs), whose last
message is the answer. TRL names the metric ``rewards/<__name__>/mean``, so ``__name__`` is the
grader's name.

TRL passes every dataset column. A null or non-JSON value in ``item_column`` scores that row 0
(``sample_parse``) instead of failing the batch; columns JSON cannot carry (datetimes, numpy
arrays, PIL images) are converted or left out for python graders by the sandbox, so a column the
grader never reads cannot zero its scores. Python graders grade the whole batch in one sandbox
round trip per worker (``evaluate_many``).

The function is synchronous: TRL may call it from its training thread, and the engine runs on a
shared background event loop (``_sync.run_sync``), so the sandbox pool and judge are reused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rlft.exceptions import UsageError
from rlft.graders._runtime.engine import (
    EngineOptions,
    Outcome,
    evaluate_inline,
    evaluate_many,
    evaluate_python_batch,
    waits_on_io,
)
from rlft.graders._runtime.sync import run_sync

if TYPE_CHECKING:
    from rlft.graders._runtime.judge import Embedder, Judge
    from rlft.graders._spec import BaseGrader

__all__ = ["RewardFunction"]

_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


class RewardFunction:
    """A TRL reward function: ``fn(prompts, completions, **columns) -> list[float]``.

    Failed grades score 0.0 (fail closed) and are counted in ``failures``. Each call logs, via
    TRL's ``log_metric``: ``<name>/failure_rate``, ``<name>/errors/<kind>`` (rate per kind) and,
    for a multi grader, ``<name>/<key>`` (each sub-grader's mean). Via ``log_extra`` it adds a
    ``<name>_error`` column to TRL's completions table ("" when the grade succeeded).

    Args:
        grader: The grader.
        judge: For model graders (default: ``OpenAIJudge()`` from the environment).
        embedder: For ``cosine`` similarity.
        pool: The Python sandbox pool (default: the process-wide pool).
        concurrency: Grades in flight at once within one call.
        item_column: Read each row's item from this column (a dict, or a JSON string) instead
            of from all dataset columns.
    """

    def __init__(
        self,
        grader: BaseGrader,
        *,
        judge: Judge | None = None,
        embedder: Embedder | None = None,
        pool: Any = None,
        concurrency: int = 8,
        item_column: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        self.grader = grader
        self.__name__ = grader.name
        self._spec = grader.to_dict()
        self._inline = not waits_on_io(self._spec)
        self._options = EngineOptions(judge=judge, embedder=embedder, pool=pool)
        self.concurrency = concurrency
        self.item_column = item_column
        self.calls = 0
        """Completions graded so far."""
        self.failures: Counter[str] = Counter()
        """Failed grades so far, by error kind."""

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__!r}, type={self._spec['type']!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for TRL and worker processes: a pool holds processes and locks, so the copy
        # uses the receiving process's default pool.
        state = self.__dict__.copy()
        state["_options"] = EngineOptions(
            judge=self._options.judge, embedder=self._options.embedder, pool=None
        )
        return state

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Any] | None = None,
        **columns: Any,
    ) -> list[float]:
        """Score each completion; one float per completion, 0.0 for a failed grade."""
        if completions is None:
            raise UsageError("the reward function needs completions=[...] (TRL passes them)")
        log_metric = columns.get("log_metric")
        log_extra = columns.get("log_extra")
        data = {k: v for k, v in columns.items() if k not in _TRL_KWARGS}
        items = self._items(data, len(completions))
        samples = [_with_roles(completion) for completion in completions]
        good = [i for i, item in enumerate(items) if not isinstance(item, Outcome)]
        rows_in = [samples[i] for i in good]
        items_in = [items[i] for i in good]
        if not good:
            graded: list[Outcome] = []
        elif self._inline:  # nothing to wait on: grade in this thread, no event-loop hop
            graded = [
                evaluate_inline(self._spec, sample, item, self._options)
                for sample, item in zip(rows_in, items_in, strict=True)
            ]
        else:  # a python grader blocks this thread for one round trip; the rest needs the loop
            python = evaluate_python_batch(self._spec, rows_in, items_in, self._options)
            graded = python if python is not None else run_sync(self._grade_all, rows_in, items_in)
        outcomes: list[Outcome] = [
            item if isinstance(item, Outcome) else Outcome(score=0.0) for item in items
        ]
        for index, outcome in zip(good, graded, strict=True):
            outcomes[index] = outcome
        self._record(outcomes, log_metric, log_extra)
        return [outcome.score for outcome in outcomes]

    def _items(self, columns: Mapping[str, Any], count: int) -> list[dict[str, Any] | Outcome]:
        for name, values in columns.items():
            if not isinstance(values, Sequence) or isinstance(values, str | bytes):
                raise UsageError(f"column {name!r} must be a list with one value per completion")
            if len(values) != count:
                raise UsageError(
                    f"column {name!r} has {len(values)} values for {count} completions"
                )
        if self.item_column is not None:
            if self.item_column not in columns:
                raise UsageError(
                    f"item_column {self.item_column!r} is not a dataset column; columns: "
                    f"{', '.join(sorted(columns)) or 'none'}"
                )
            return [
                _as_item(value, self.item_column, row)
                for row, value in enumerate(columns[self.item_column])
            ]
        return [{name: values[index] for name, values in columns.items()} for index in range(count)]

    async def _grade_all(self, completions: list[Any], items: list[Any]) -> list[Outcome]:
        return await evaluate_many(
            self._spec, completions, items, self._options, concurrency=self.concurrency
        )

    def _record(self, outcomes: list[Outcome], log_metric: Any, log_extra: Any) -> None:
        count = len(outcomes)
        self.calls += count
        kinds: Counter[str] = Counter()
        failed = 0
        for outcome in outcomes:
            if not (outcome.errors or outcome.sub):
                continue  # the common case, without building all_errors
            errors = outcome.all_errors
            if errors:
                failed += 1
            kinds.update(errors)
        self.failures.update(kinds)
        if callable(log_metric) and count:
            name = self.__name__
            log_metric(f"{name}/failure_rate", failed / count)
            for kind, number in sorted(kinds.items()):
                log_metric(f"{name}/errors/{kind}", number / count)
            keys = outcomes[0].sub.keys() if outcomes else ()
            for key in keys:
                scores = [o.sub[key].score for o in outcomes if key in o.sub]
                if scores:
                    log_metric(f"{name}/{key}", sum(scores) / len(scores))
        if callable(log_extra):
            log_extra(
                f"{self.__name__}_error",
                [(outcome.reason or "") if outcome.all_errors else "" for outcome in outcomes],
            )


def _as_item(value: Any, column: str, row: int) -> dict[str, Any] | Outcome:
    """The row's item, or a failed outcome saying why this one row cannot be graded."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, Mapping):
            return dict(parsed)
    shown = "null" if value is None else f"{value!r:.80}"
    return Outcome(
        score=0.0,
        errors=("sample_parse",),
        reason=(
            f"row {row}: item column {column!r} holds {shown}, not a dict or a JSON object; "
            "fix that dataset row"
        ),
    )


def _with_roles(completion: Any) -> Any:
    """TRL's docs pass ``[{"content": ...}]``: no role, the last message is the answer."""
    if (
        isinstance(completion, list)
        and completion
        and all(isinstance(m, Mapping) and "role" not in m for m in completion)
    ):
        *earlier, last = completion
        return [*earlier, {**last, "role": "assistant"}]
    return completion
