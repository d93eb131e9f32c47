"""Graders over HTTP: OpenAI's run/validate API and Azure's endpoint-grader contract.

Both answer on rlft's own engine; Python graders run in rlft's sandbox, as the engine always
runs them, so source received over the network never runs in the server process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from rlft.exceptions import GraderNotSupportedError, GraderValidationError, RLFTError
from rlft.graders import Grader, GradeResult, compile, from_openai, load
from rlft.serve._errors import ApiError

__all__ = ["GraderService", "run_response"]

# rlft's failure kinds -> OpenAI's error flags (RunGraderResponse.metadata.errors).
_FLAGS = {
    "invalid_variable": "invalid_variable_error",
    "sample_parse": "sample_parse_error",
    "python_runtime": "python_grader_runtime_error",
    "python_invalid_return": "python_grader_runtime_error",
    "python_server": "python_grader_server_error",
    "timeout": "python_grader_server_error",
    "model_server": "model_grader_server_error",
    "model_parse": "model_grader_parse_error",
    "formula": "formula_parse_error",
}
_DETAILS = {
    "python_grader_server_error_type": "python_grader_server_error",
    "python_grader_runtime_error_details": "python_grader_runtime_error",
    "model_grader_server_error_details": "model_grader_server_error",
}
_BOOLS = (
    "formula_parse_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "other_error",
    "python_grader_server_error",
    "python_grader_runtime_error",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_parse_error",
)


def _grader(data: Any, param: str = "grader") -> Grader:
    if not isinstance(data, Mapping):
        raise ApiError(400, f"{param} must be a grader object", param=param)
    try:
        grader = from_openai(data)
        compile(grader, "openai")  # what OpenAI's validate checks: it would be accepted there
    except GraderValidationError as exc:
        where = f"{param}.{exc.path}" if exc.path else param
        raise ApiError(400, f"invalid grader: {exc}", param=where, code="invalid_grader") from None
    except GraderNotSupportedError as exc:
        raise ApiError(400, f"unsupported grader: {exc}", param=param) from None
    return grader


def run_response(grader: Grader, result: GradeResult) -> dict[str, Any]:
    """A ``GradeResult`` as OpenAI's ``RunGraderResponse``."""
    errors: dict[str, Any] = dict.fromkeys(_BOOLS, False)
    for kind in result.errors:
        errors[_FLAGS.get(kind, "other_error")] = True
    for detail, flag in _DETAILS.items():
        errors[detail] = (result.reason or "error") if errors[flag] else None
    return {
        "reward": result.score,
        "metadata": {
            "name": grader.name,
            "type": grader.type,
            "errors": errors,
            "execution_time": result.latency_s,
            "scores": {k: v for k, v in result.sub_scores.items()},
            "token_usage": None,
            "sampled_model_name": None,
        },
        "sub_rewards": dict(result.sub_scores),
        "model_grader_token_usage_per_model": {},
    }


class GraderService:
    """The grader endpoints. ``served`` are the graders ``/graders/NAME/score`` answers."""

    def __init__(self, served: Mapping[str, Path], *, timeout: float) -> None:
        self.timeout = timeout
        self.served: dict[str, Grader] = {}
        for name, path in served.items():
            self.served[name] = load(path)  # a bad file stops the start, with its reason

    async def validate(self, body: Any) -> dict[str, Any]:
        """``POST /v1/fine_tuning/alpha/graders/validate``."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "the request body must be a JSON object")
        grader = _grader(body.get("grader"))
        return {"grader": grader.to_openai()}

    async def run(self, body: Any) -> dict[str, Any]:
        """``POST /v1/fine_tuning/alpha/graders/run``."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "the request body must be a JSON object")
        grader = _grader(body.get("grader"))
        sample = body.get("model_sample")
        if not isinstance(sample, str):
            raise ApiError(400, "model_sample must be a string", param="model_sample")
        item = body.get("item") or {}
        if not isinstance(item, Mapping):
            raise ApiError(400, "item must be an object", param="item")
        result = await self._grade(grader, sample, item)
        return run_response(grader, result)

    async def score(self, name: str, body: Any) -> dict[str, Any]:
        """Azure's endpoint-grader contract: ``{sample, item, trace_id}`` -> ``{score}``."""
        grader = self.served.get(name)
        if grader is None:
            raise ApiError(404, f"no grader {name[:80]!r} is served here", param="name")
        if not isinstance(body, Mapping) or "sample" not in body:
            raise ApiError(400, "the body is {sample, item, trace_id}", param="sample")
        item = body.get("item") or {}
        if not isinstance(item, Mapping):
            raise ApiError(400, "item must be an object", param="item")
        result = await self._grade(grader, body["sample"], item)
        return {"score": result.score}

    async def _grade(self, grader: Grader, sample: Any, item: Mapping[str, Any]) -> GradeResult:
        started = time.monotonic()
        try:
            with anyio.fail_after(self.timeout):
                return await grader.grade(sample, dict(item))
        except TimeoutError:
            return GradeResult(
                score=0.0,
                errors=("timeout",),
                reason=f"grading took longer than {self.timeout:g}s",
                latency_s=time.monotonic() - started,
            )
        except RLFTError as exc:  # graders fail closed; a usage error here is the input's fault
            raise ApiError(400, str(exc)) from None
