"""The Bedrock Lambda side of a compiled grader: read Bedrock's event, run the engine, reply.

Bedrock's contract (reference/bedrock.md §8): the event is a bare JSON array of samples, each
with an ``id`` and ``messages`` whose last assistant turn (role ``assistant`` or
``nova_assistant``; content a string or ``[{"type": "text", "text": ...}]``) is the answer, and
the reference data as ``reference_answer`` at the top level *or* under ``metadata`` (AWS sources
disagree, so both are read). The reply is one ``{"id", "aggregate_reward_score",
"metrics_list"}`` per sample, in order.

The ``item`` a grader sees is the sample's ``metadata`` merged with its other top-level fields
(top level wins), so ``{{ item.reference_answer }}`` and any extra dataset field work.

Python graders run in the Lambda's own process: Lambda is the sandbox (its timeout and memory
limits apply), and pydantic, which rlft's worker pool needs, is not in the Lambda runtime. Return
values are checked exactly as the pool checks them, so scores match the local engine.

This module is copied into the Lambda package with the other engine runtime modules; it imports
only the standard library, anyio and them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from rlft.graders._runtime.engine import EngineOptions, Outcome, evaluate, map_bounded
from rlft.graders._runtime.judge import BedrockJudge, Judge, OpenAIJudge
from rlft.graders._runtime.sync import run_sync

__all__ = ["Handler", "InProcessPython", "PythonResult", "sample_item"]

log = logging.getLogger("rlft.grader")

_RESERVED = frozenset({"id", "messages", "metadata"})


@dataclass(frozen=True)
class PythonResult:
    """What ``InProcessPython.run`` returns: the sandbox result's fields the engine reads."""

    score: float
    error: str | None = None
    error_kind: str | None = None


class InProcessPython:
    """Run ``grade(sample, item)`` in this process, with the sandbox's return-value rules.

    Args:
        timeout_s: Per call. A grader past it scores 0 with ``timeout``; its thread cannot be
            killed and keeps running until the Lambda invocation ends.
    """

    def __init__(self, *, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self._modules: dict[str, Callable[[Any, Any], Any] | str] = {}

    def _grade_fn(self, source: str) -> Callable[[Any, Any], Any] | str:
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        if digest not in self._modules:
            namespace: dict[str, Any] = {"__name__": "rlft_python_grader"}
            try:
                exec(compile(source, "<grader>", "exec"), namespace)  # the user's own grader
                fn = namespace.get("grade")
                self._modules[digest] = fn if callable(fn) else "no top-level grade(sample, item)"
            except BaseException as exc:  # noqa: BLE001 - a module that raises at import
                self._modules[digest] = _tail(exc)
        return self._modules[digest]

    async def run(
        self, source: str, sample: Mapping[str, Any], item: Mapping[str, Any]
    ) -> PythonResult:
        """Call the grader; failures score 0.0 with ``error_kind`` as the pool names them."""
        fn = self._grade_fn(source)
        if isinstance(fn, str):
            return PythonResult(score=0.0, error=fn, error_kind="exception")
        # The grader gets its own copies, as it would across the pool's process boundary.
        sample_copy = json.loads(json.dumps(dict(sample)))
        item_copy = json.loads(json.dumps(dict(item)))

        def call() -> Any:
            return fn(sample_copy, item_copy)

        try:
            with anyio.fail_after(self.timeout_s):
                value = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            return PythonResult(
                score=0.0, error=f"timed out after {self.timeout_s:g} s", error_kind="timeout"
            )
        except Exception as exc:
            return PythonResult(score=0.0, error=_tail(exc), error_kind="exception")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return PythonResult(
                score=0.0,
                error=f"grade() returned {type(value).__name__} {value!r:.80}, not a number",
                error_kind="invalid_return",
            )
        score = float(value)
        if not math.isfinite(score):
            return PythonResult(
                score=0.0, error=f"grade() returned {score}", error_kind="invalid_return"
            )
        return PythonResult(score=score)


def _tail(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text[-2000:]


def sample_item(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The ``item`` for one Bedrock sample: ``metadata`` merged with other top-level fields."""
    item: dict[str, Any] = {}
    metadata = sample.get("metadata")
    if isinstance(metadata, Mapping):
        item.update(metadata)
    item.update({key: value for key, value in sample.items() if key not in _RESERVED})
    return item


def _event_samples(event: Any) -> list[Any]:
    if isinstance(event, str | bytes):
        event = json.loads(event)
    if isinstance(event, Mapping):
        if "messages" in event:
            return [event]  # one sample, not wrapped in a list
        for key in ("samples", "batch", "inputs"):
            if isinstance(event.get(key), list):
                return list(event[key])
        raise TypeError(
            "the grader event must be a JSON array of samples with id and messages; got an "
            f"object with keys {sorted(event)[:10]}"
        )
    if isinstance(event, Sequence):
        return list(event)
    raise TypeError(f"the grader event must be a JSON array, got {type(event).__name__}")


class Handler:
    """The Lambda entry point's state: the grader JSON and how to run it.

    Args:
        config: ``{"grader": {...}, "judge": "bedrock" | "openai", "judge_model": str | None,
            "concurrency": int, "python_timeout_s": float}`` (what ``rlft_grader.json`` holds).
        judge: A judge to use instead of the configured one (tests).
    """

    def __init__(self, config: Mapping[str, Any], *, judge: Judge | None = None) -> None:
        self.spec: dict[str, Any] = dict(config["grader"])
        self.name: str = str(self.spec.get("name", "grader"))
        self.concurrency = int(config.get("concurrency", 8))
        if judge is None:
            model = config.get("judge_model")
            judge = (
                OpenAIJudge(model=model)
                if config.get("judge") == "openai"
                else BedrockJudge(model=model)
            )
        self.options = EngineOptions(
            judge=judge,
            pool=InProcessPython(timeout_s=float(config.get("python_timeout_s", 120.0))),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Handler:
        """Load the packaged ``rlft_grader.json``."""
        return cls(json.loads(Path(path).read_text()))

    def __call__(self, event: Any, context: Any = None) -> list[dict[str, Any]]:
        """Grade a batch; the Lambda handler. One reply per sample, in order."""
        samples = _event_samples(event)
        outcomes = run_sync(self._grade_all, samples)
        return [
            self._reply(sample, outcome) for sample, outcome in zip(samples, outcomes, strict=True)
        ]

    async def _grade_all(self, samples: list[Any]) -> list[Outcome]:
        async def one(index: int) -> Outcome:
            sample = samples[index]
            if not isinstance(sample, Mapping):
                return Outcome(
                    score=0.0, errors=("sample_parse",), reason="a sample must be an object"
                )
            return await evaluate(
                self.spec, sample.get("messages"), sample_item(sample), self.options
            )

        return await map_bounded(one, len(samples), self.concurrency)

    def _reply(self, sample: Any, outcome: Outcome) -> dict[str, Any]:
        sample_id = sample.get("id") if isinstance(sample, Mapping) else None
        errors = outcome.all_errors
        if errors:
            log.warning("sample %s scored 0: %s: %s", sample_id, ",".join(errors), outcome.reason)
        metrics = [{"name": self.name, "value": outcome.score, "type": "Reward"}]
        metrics += [
            {"name": key, "value": sub.score, "type": "Metric"} for key, sub in outcome.sub.items()
        ]
        metrics.append({"name": "grader_error", "value": 1.0 if errors else 0.0, "type": "Metric"})
        return {"id": sample_id, "aggregate_reward_score": outcome.score, "metrics_list": metrics}
