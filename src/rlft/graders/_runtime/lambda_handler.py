"""The Bedrock Lambda side of a compiled grader: read Bedrock's event, run the engine, reply.

Bedrock's contract (reference/bedrock.md §8): the event is a bare JSON array of samples (or
``{"trajectories": [...]}``, as AWS's gpt-oss reward sample accepts), each with an ``id`` (or a
``task_id``) and ``messages`` whose assistant turn after the last user turn (role ``assistant``
or ``nova_assistant``; content a string or ``[{"type": "text", "text": ...}]``) is the answer;
a sample without one fails closed with "no model answer", so a few-shot assistant turn inside
the prompt is never graded. The reference data is ``reference_answer`` at the top level *or*
under ``metadata`` (AWS sources disagree, so both are read). The reply is one ``{"id",
"aggregate_reward_score", "metrics_list"}`` per sample, in order, and never a raised error.

The ``item`` a grader sees is the sample's ``metadata`` merged with its other top-level fields
(top level wins), so ``{{ item.reference_answer }}`` and any extra dataset field work.

Python graders run in child processes (``LambdaPython``, ``pyworker.py``): a timeout kills the
grader and everything it started, and a grader that exits or raises ``SystemExit`` fails only
its own sample. Lambda is the outer sandbox (its timeout and memory limits apply); pydantic,
which rlft's own pool needs, is not in the Lambda runtime. Return values are checked exactly as
the pool checks them, so scores match the local engine.

This module is copied into the Lambda package with the other engine runtime modules; it imports
only the standard library, anyio and them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from rlft.graders._runtime.engine import EngineOptions, Outcome, evaluate, map_bounded
from rlft.graders._runtime.judge import BedrockJudge, Judge, OpenAIJudge
from rlft.graders._runtime.sync import run_sync

__all__ = ["Handler", "InProcessPython", "LambdaPython", "PythonResult", "sample_item"]

log = logging.getLogger("rlft.grader")

_RESERVED = frozenset({"id", "messages", "metadata"})


@dataclass(frozen=True)
class PythonResult:
    """What ``LambdaPython.run`` returns: the sandbox result's fields the engine reads."""

    score: float
    error: str | None = None
    error_kind: str | None = None


_WORKER = Path(__file__).resolve().with_name("pyworker.py")
# The Lambda role's credentials and judge keys stay in the handler; grader code needs none.
_SECRET_ENV = re.compile(
    r"^(AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|SECURITY_TOKEN)|"
    r"(RLFT_JUDGE|OPENAI|AZURE_OPENAI)_API_KEY)$"
)


class _WorkerDied(Exception):
    """The worker exited (os._exit, a crash, the OOM killer) before replying."""


class _Worker:
    """One ``pyworker.py`` child in its own session, so a kill takes all its processes."""

    def __init__(self, memory_mb: int | None = None) -> None:
        env = {key: value for key, value in os.environ.items() if not _SECRET_ENV.match(key)}
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("RLFT_PYTHON_MEMORY_MB", None)
        if memory_mb:
            env["RLFT_PYTHON_MEMORY_MB"] = str(memory_mb)
        self.proc = subprocess.Popen(
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._buffer = b""

    def call(self, request: bytes, timeout_s: float) -> dict[str, Any]:
        """Send one request and wait for its reply line.

        Raises:
            TimeoutError: No reply within ``timeout_s`` (the caller kills this worker).
            _WorkerDied: The worker exited first.
        """
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(request + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise _WorkerDied(f"the python worker is gone ({exc})") from None
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self.proc.wait()
                raise _WorkerDied(f"the grader's process exited with code {code}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def kill(self) -> None:
        """Kill the worker and every process it started, and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class LambdaPython:
    """Run python graders in child processes, with the sandbox pool's return-value rules.

    Each call goes to an idle ``pyworker.py`` child (at most ``workers`` at once; they are
    reused, and keep each grader's module loaded). A grader past ``timeout_s`` is killed with
    every process it started, so nothing it began runs on into later calls or invocations;
    ``SystemExit``, ``KeyboardInterrupt`` and a grader that kills its own process fail that one
    sample closed, and the Lambda carries on. The children get the Lambda's environment minus
    its AWS credentials and judge API keys.

    Args:
        timeout_s: Per call. A grader past it scores 0 with ``timeout``.
        workers: Grader processes running at once.
        memory_mb: Heap limit per grader process; past it the grader gets ``MemoryError``
            (``python_runtime``) instead of the kernel killing the whole function. Default:
            three quarters of the function's memory (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``)
            shared by the workers; no limit outside Lambda.
    """

    def __init__(
        self, *, timeout_s: float = 120.0, workers: int = 2, memory_mb: int | None = None
    ) -> None:
        if memory_mb is None:
            function_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
            if function_mb.isdigit():
                memory_mb = int(function_mb) * 3 // 4 // max(1, workers)
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _kill_all, self._idle)  # idle workers end with their owner

    async def run(
        self, source: str, sample: Mapping[str, Any], item: Mapping[str, Any]
    ) -> PythonResult:
        """Call the grader; failures score 0.0 with ``error_kind`` as the pool names them."""
        try:
            request = json.dumps({"source": source, "sample": sample, "item": item}).encode()
        except (TypeError, ValueError) as exc:
            return PythonResult(score=0.0, error=f"inputs are not JSON: {exc}", error_kind="crash")
        return await anyio.to_thread.run_sync(self._run_blocking, request)

    def _run_blocking(self, request: bytes) -> PythonResult:
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            try:
                worker = worker or _Worker(self.memory_mb)
            except OSError as exc:
                return PythonResult(
                    score=0.0, error=f"cannot start python: {exc}", error_kind="crash"
                )
            try:
                reply = worker.call(request, self.timeout_s)
            except TimeoutError:
                worker.kill()
                return PythonResult(
                    score=0.0, error=f"timed out after {self.timeout_s:g} s", error_kind="timeout"
                )
            except (_WorkerDied, ValueError) as exc:  # ValueError: a garbled reply
                worker.kill()
                return PythonResult(score=0.0, error=str(exc), error_kind="crash")
            with self._lock:
                self._idle.append(worker)
        if "score" in reply:
            return PythonResult(score=float(reply["score"]))
        return PythonResult(
            score=0.0, error=str(reply.get("error")), error_kind=str(reply.get("kind"))
        )

    def close(self) -> None:
        """Stop the idle workers (busy ones stop when their call ends)."""
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _kill_all(idle)


def _kill_all(workers: list[_Worker]) -> None:
    while workers:
        workers.pop().kill()


InProcessPython = LambdaPython  # the name before python graders left the handler's process


def sample_item(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The ``item`` for one Bedrock sample: ``metadata`` merged with other top-level fields."""
    item: dict[str, Any] = {}
    metadata = sample.get("metadata")
    if isinstance(metadata, Mapping):
        item.update(metadata)
    item.update({key: value for key, value in sample.items() if key not in _RESERVED})
    return item


def _event_samples(event: Any) -> list[Any]:
    """The samples in a Bedrock event.

    Raises:
        ValueError: The event holds no samples in any shape AWS uses.
    """
    if isinstance(event, str | bytes):
        event = json.loads(event)
    if isinstance(event, Mapping):
        if "messages" in event:
            return [event]  # one sample, not wrapped in a list
        # "trajectories": AWS's gpt-oss reward sample; the others: batch wrappers seen in tests
        for key in ("trajectories", "samples", "batch", "inputs"):
            if isinstance(event.get(key), list):
                return list(event[key])
        raise ValueError(
            "the grader event must be a JSON array of samples with id and messages; got an "
            f"object with keys {sorted(map(str, event))[:10]}"
        )
    if isinstance(event, Sequence):
        return list(event)
    raise ValueError(f"the grader event must be a JSON array, got {type(event).__name__}")


def sample_id(sample: Any, index: int) -> Any:
    """The reply id: the sample's ``id``, else its ``task_id`` (some AWS datasets), else its
    position, so no reply has a null id."""
    if isinstance(sample, Mapping):
        for key in ("id", "task_id"):
            if sample.get(key) is not None:
                return sample[key]
        metadata = sample.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get("task_id") is not None:
            return metadata["task_id"]
    return f"sample-{index}"


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
        memory = config.get("python_memory_mb")
        self.python = LambdaPython(
            timeout_s=float(config.get("python_timeout_s", 120.0)),
            workers=int(config.get("python_workers", 2)),
            memory_mb=int(memory) if memory else None,
        )
        self.options = EngineOptions(judge=judge, pool=self.python)

    @classmethod
    def from_file(cls, path: str | Path) -> Handler:
        """Load the packaged ``rlft_grader.json``."""
        return cls(json.loads(Path(path).read_text()))

    def __call__(self, event: Any, context: Any = None) -> list[dict[str, Any]]:
        """Grade a batch; the Lambda handler. One reply per sample, in order. Never raises.

        An event with no samples in it is logged and answered with ``[]``: there is nothing to
        reply to. Every sample gets a reply, failures scoring 0 with ``grader_error`` 1.
        """
        try:
            samples = _event_samples(event)
        except (ValueError, RecursionError) as exc:
            log.error("rlft grader %s: unreadable event: %s", self.name, exc)
            return []
        try:
            outcomes = run_sync(self._grade_all, samples)
        except BaseException as exc:  # noqa: BLE001 - the batch must get an answer
            reason = f"the grading loop failed: {type(exc).__name__}: {exc}"
            outcomes = [Outcome(score=0.0, errors=("other",), reason=reason)] * len(samples)
        return [
            self._reply(sample_id(sample, index), outcome)
            for index, (sample, outcome) in enumerate(zip(samples, outcomes, strict=True))
        ]

    async def _grade_all(self, samples: list[Any]) -> list[Outcome]:
        cancelled = anyio.get_cancelled_exc_class()

        async def one(index: int) -> Outcome:
            sample = samples[index]
            if not isinstance(sample, Mapping):
                return Outcome(
                    score=0.0, errors=("sample_parse",), reason="a sample must be an object"
                )
            messages = sample.get("messages")
            if not isinstance(messages, list):
                return Outcome(
                    score=0.0,
                    errors=("sample_parse",),
                    reason="no model answer: the sample's messages are not a list of turns",
                )
            try:
                return await evaluate(self.spec, messages, sample_item(sample), self.options)
            except cancelled:
                raise
            except BaseException as exc:  # noqa: BLE001 - one sample never takes the batch down
                return Outcome(score=0.0, errors=("other",), reason=f"{type(exc).__name__}: {exc}")

        return await map_bounded(one, len(samples), self.concurrency)

    def _reply(self, reply_id: Any, outcome: Outcome) -> dict[str, Any]:
        errors = outcome.all_errors
        if errors:
            log.warning("sample %s: %s: %s", reply_id, ",".join(errors), outcome.reason)
        metrics = [{"name": self.name, "value": outcome.score, "type": "Reward"}]
        metrics += [
            {"name": key, "value": sub.score, "type": "Metric"} for key, sub in outcome.sub.items()
        ]
        # pass_threshold's pass/fail, for the grader and each sub-grader that has one
        passes = [(self.name, outcome.passed)]
        passes += [(key, sub.passed) for key, sub in outcome.sub.items()]
        metrics += [
            {"name": f"{key}_passed", "value": 1.0 if passed else 0.0, "type": "Metric"}
            for key, passed in passes
            if passed is not None
        ]
        metrics.append({"name": "grader_error", "value": 1.0 if errors else 0.0, "type": "Metric"})
        return {"id": reply_id, "aggregate_reward_score": outcome.score, "metrics_list": metrics}
