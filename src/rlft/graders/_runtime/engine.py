"""The local grader engine: the single implementation of grader semantics.

``grader.grade()``, the TRL reward function and the Bedrock Lambda handler all end up in
``evaluate()`` here, so a grader scores the same everywhere. The engine works on the grader's
plain JSON (``grader.to_dict()``), never on pydantic models, because this module is copied into
the Lambda package where pydantic is not installed: it imports only the standard library, anyio
and the other runtime modules (``_template``, ``_formula``, ``_sample``, ``_metrics``,
``_judge``), and loads metric libraries, httpx, boto3 and the sandbox on first use.

Fail closed: every failure becomes ``Outcome(score=0.0, errors=(kind,), reason=...)``. Only
cancellation propagates.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import anyio

from rlft.graders._runtime.formula import Formula, FormulaError, FormulaSyntaxError, parse_formula
from rlft.graders._runtime.images import IMAGE_PART_TYPES, image_url_of
from rlft.graders._runtime.judge import (
    Embedder,
    Judge,
    JudgeError,
    JudgeRequest,
    OpenAIJudge,
)
from rlft.graders._runtime.metrics import (
    MetricUnavailableError,
    cosine_similarity,
    lexical_similarity,
)
from rlft.graders._runtime.sample import (
    SampleError,
    compact_sample,
    normalize_item,
    normalize_sample,
)
from rlft.graders._runtime.template import (
    Template,
    TemplateRenderError,
    TemplateSyntaxError,
    Variable,
    parse_template,
)

__all__ = [
    "Embedder",
    "EngineOptions",
    "map_bounded",
    "Judge",
    "Outcome",
    "evaluate",
    "evaluate_many",
    "evaluate_python_batch",
    "label_schema",
    "parse_label",
    "parse_score",
    "score_schema",
]

T = TypeVar("T")

MODEL_GRADER_TYPES = frozenset({"score_model", "label_model"})
_KNOWN = frozenset(
    {"string_check", "text_similarity", "python", "score_model", "label_model", "multi"}
)
# The sandbox's error kinds (SandboxErrorKind in the sandbox pool) -> ours. A crash or an
# out-of-memory is the grader code's doing, so it is a runtime error, as on OpenAI.
_SANDBOX_KINDS = {
    "timeout": "timeout",
    "exception": "python_runtime",
    "memory": "python_runtime",
    "crash": "python_runtime",
    "syntax": "python_runtime",
    "no_grade_function": "python_runtime",
    "invalid_return": "python_invalid_return",
}


@dataclass(frozen=True)
class Outcome:
    """The engine's result: the plain-data twin of ``GradeResult`` (no pydantic here)."""

    score: float
    errors: tuple[str, ...] = ()
    reason: str | None = None
    latency_s: float = 0.0
    sub: dict[str, Outcome] = field(default_factory=dict)
    passed: bool | None = None
    """``score >= pass_threshold`` for a grader that has one (a failed grade never passes)."""

    @property
    def all_errors(self) -> tuple[str, ...]:
        """This outcome's error kinds and its sub-graders', once each, in order."""
        seen: dict[str, None] = dict.fromkeys(self.errors)
        for outcome in self.sub.values():
            seen.update(dict.fromkeys(outcome.all_errors))
        return tuple(seen)


def _fail(kind: str, reason: str) -> Outcome:
    return Outcome(score=0.0, errors=(kind,), reason=reason)


@dataclass
class EngineOptions:
    """What the engine needs beyond the grader: a judge, an embedder and the sandbox pool.

    Attributes:
        judge: For model graders; ``None`` builds an ``OpenAIJudge`` from the environment.
        embedder: For ``cosine``; ``None`` makes ``cosine`` fail with ``metric_unavailable``.
        pool: A sandbox pool (``run(source, sample, item)``); ``None`` uses the process-wide
            ``default_pool()``.
    """

    judge: Judge | None = None
    embedder: Embedder | None = None
    pool: Any = None

    def get_judge(self) -> Judge:
        if self.judge is None:
            self.judge = OpenAIJudge()
        return self.judge

    def get_pool(self) -> Any:
        if self.pool is None:
            from rlft.graders._sandbox.pool import default_pool

            self.pool = default_pool()
        return self.pool


async def map_bounded(fn: Callable[[int], Awaitable[T]], count: int, concurrency: int) -> list[T]:
    """``[await fn(0), ..., await fn(count - 1)]`` with at most ``concurrency`` in flight.

    ``concurrency`` lanes pull the next index, rather than a task and a limiter per index: for
    cheap grades the per-task overhead was most of the time.
    """
    results: list[Any] = [None] * count
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1  # no await between the check and the claim: lanes never collide
            results[index] = await fn(index)

    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, count)):
            group.start_soon(lane)
    return results


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    return parse_template(source)


@functools.lru_cache(maxsize=256)
def _formula(source: str, names: frozenset[str]) -> Formula:
    return parse_formula(source, names=names)


async def evaluate(
    spec: Mapping[str, Any], sample: Any, item: Any, options: EngineOptions | None = None
) -> Outcome:
    """Grade one sample against one item with a grader given as JSON. Never raises.

    Args:
        spec: The grader's JSON (``grader.to_dict()`` or OpenAI grader JSON).
        sample: Any sample shape ``normalize_sample`` accepts.
        item: The dataset row, or ``None``.
        options: Judge, embedder and pool; defaults are built on first need.
    """
    options = options or EngineOptions()
    start = time.perf_counter()
    try:
        sample_dict = normalize_sample(sample)
        item_dict = normalize_item(item)
    except SampleError as exc:
        outcome = _fail("sample_parse", str(exc))
    else:
        outcome = await _run(spec, sample_dict, item_dict, options)
    return replace(outcome, latency_s=time.perf_counter() - start)


async def _run(
    spec: Mapping[str, Any],
    sample: dict[str, Any],
    item: dict[str, Any],
    options: EngineOptions,
) -> Outcome:
    outcome = await _run_kind(spec, sample, item, options)
    threshold = spec.get("pass_threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        # pass_threshold (OpenAI's and Azure's examples): a pass/fail beside the score.
        return replace(outcome, passed=not outcome.errors and outcome.score >= threshold)
    return outcome


async def _run_kind(
    spec: Mapping[str, Any],
    sample: dict[str, Any],
    item: dict[str, Any],
    options: EngineOptions,
) -> Outcome:
    kind = spec.get("type")
    try:
        if kind == "string_check":
            return _string_check(spec, sample, item)
        if kind == "text_similarity":
            return await _text_similarity(spec, sample, item, options)
        if kind == "python":
            return await _python(spec, sample, item, options)
        if kind in MODEL_GRADER_TYPES:
            return await _model(spec, sample, item, options)
        if kind == "multi":
            return await _multi(spec, sample, item, options)
        if kind == "native":
            payload = spec.get("payload") or {}
            if isinstance(payload, Mapping) and payload.get("type") in _KNOWN:
                return await _run(payload, sample, item, options)
            return _fail(
                "unsupported",
                f"native {spec.get('target')} grader {payload.get('type', '')!r} runs only on "
                f"{spec.get('target')}; it cannot be graded locally",
            )
        return _fail("unsupported", f"unknown grader type {kind!r}")
    except TemplateRenderError as exc:
        return _fail(exc.kind, str(exc))
    except (TemplateSyntaxError, FormulaSyntaxError) as exc:
        # Only unvalidated JSON (a native payload) gets here; built graders were checked.
        return _fail("other", f"invalid grader: {exc}")
    except Exception as exc:  # fail closed on anything we did not foresee
        return _fail("other", f"{type(exc).__name__}: {exc}")


def _render(source: str, sample: dict[str, Any], item: dict[str, Any]) -> str:
    return _template(source).render(sample, item)


def _string_check(spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any]) -> Outcome:
    value = _render(spec["input"], sample, item)
    reference = _render(spec["reference"], sample, item)
    operation = spec["operation"]
    if operation == "eq":
        passed = value == reference
    elif operation == "ne":
        passed = value != reference
    elif operation == "like":
        passed = reference in value
    elif operation == "ilike":
        passed = reference.casefold() in value.casefold()
    else:
        return _fail("other", f"unknown string_check operation {operation!r}")
    return Outcome(score=1.0 if passed else 0.0)


async def _text_similarity(
    spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any], options: EngineOptions
) -> Outcome:
    value = _render(spec["input"], sample, item)
    reference = _render(spec["reference"], sample, item)
    metric = spec["evaluation_metric"]
    if metric == "cosine":
        if options.embedder is None:
            return _fail(
                "metric_unavailable",
                "cosine similarity needs an embedder: pass grade(..., embedder=...) with an "
                "object that has `async embed(texts) -> list[list[float]]`",
            )
        try:
            vectors = await options.embedder.embed([value, reference])
            return Outcome(score=cosine_similarity(vectors[0], vectors[1]))
        except Exception as exc:
            return _fail("model_server", f"embedder failed: {type(exc).__name__}: {exc}")
    try:
        return Outcome(score=lexical_similarity(metric, value, reference))
    except MetricUnavailableError as exc:
        return _fail("metric_unavailable", str(exc))


async def _python(
    spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any], options: EngineOptions
) -> Outcome:
    try:
        pool = options.get_pool()
    except Exception as exc:  # no sandbox module, or a bad RLFT_GRADER_ISOLATION
        return _fail("python_server", f"the python sandbox is not available: {exc}")
    try:
        result = await pool.run(spec["source"], sample, item)
    except Exception as exc:  # a closed pool, a worker that cannot start, unserialisable input
        return _fail("python_server", f"python sandbox: {type(exc).__name__}: {exc}")
    return _python_outcome(result)


def _python_outcome(result: Any, latency_s: float = 0.0) -> Outcome:
    """A sandbox result (``SandboxResult`` or the Lambda's twin) as an engine outcome."""
    if isinstance(result, Exception):  # the batch could not run: a closed pool, no worker
        reason = f"python sandbox: {type(result).__name__}: {result}"
        return Outcome(0.0, ("python_server",), reason, latency_s)
    if result.error is not None or result.error_kind is not None:
        kind = _SANDBOX_KINDS.get(str(result.error_kind), "python_runtime")
        return Outcome(0.0, (kind,), str(result.error or result.error_kind), latency_s)
    score = result.score
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        reason = f"grade() returned {score!r}, not a finite number"
        return Outcome(0.0, ("python_invalid_return",), reason, latency_s)
    return Outcome(float(score), latency_s=latency_s)


# -- many samples at once: one sandbox round trip per python grader -------------------------------


def _python_sources(spec: Mapping[str, Any]) -> list[str]:
    """The sources of the python graders ``spec`` runs (itself, a native payload, sub-graders)."""
    kind = spec.get("type")
    if kind == "python":
        return [spec["source"]]
    if kind == "native":  # an OpenAI-style payload may hold python graders
        payload = spec.get("payload")
        return _python_sources(payload) if isinstance(payload, Mapping) else []
    if kind == "multi":
        graders = spec.get("graders")
        if isinstance(graders, Mapping):
            return [
                s
                for sub in graders.values()
                if isinstance(sub, Mapping)
                for s in _python_sources(sub)
            ]
    return []


def _waits_beyond_python(spec: Mapping[str, Any]) -> bool:
    """Whether grading ``spec`` waits on I/O other than the python sandbox."""
    kind = spec.get("type")
    if kind == "multi":
        return any(_waits_beyond_python(sub) for sub in spec["graders"].values())
    if kind == "native":
        payload = spec.get("payload")
        return isinstance(payload, Mapping) and _waits_beyond_python(payload)
    return kind != "python" and _waits(spec)


@dataclass(frozen=True, slots=True)
class _Result:
    """A sandbox row result, as ``_python_outcome`` reads it."""

    score: float
    error: str | None
    error_kind: str | None


class _Answered:
    """A pool stand-in that returns one row's results, graded beforehand in a batch."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    async def run(self, source: str, sample: Any, item: Any) -> Any:
        answer = self.answers[source]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _parse_rows(
    samples: Sequence[Any], items: Sequence[Any]
) -> list[tuple[dict[str, Any], dict[str, Any]] | Outcome]:
    parsed: list[tuple[dict[str, Any], dict[str, Any]] | Outcome] = []
    for sample, item in zip(samples, items, strict=True):
        try:
            parsed.append((normalize_sample(sample), normalize_item(item)))
        except SampleError as exc:
            parsed.append(_fail("sample_parse", str(exc)))
    return parsed


def _compact_rows(
    samples: Sequence[Any], items: Sequence[Any]
) -> list[tuple[str | dict[str, Any], Mapping[str, Any]] | Outcome]:
    """``_parse_rows`` for the sandbox: a plain answer stays its text (``compact_sample``), and
    a dict item is sent as it is (it is only serialised, so it needs no copy)."""
    parsed: list[tuple[str | dict[str, Any], Mapping[str, Any]] | Outcome] = []
    for sample, item in zip(samples, items, strict=True):
        try:
            row = item if type(item) is dict else normalize_item(item)
            parsed.append((compact_sample(sample), row))
        except SampleError as exc:
            parsed.append(_fail("sample_parse", str(exc)))
    return parsed


def evaluate_python_batch(
    spec: Mapping[str, Any],
    samples: Sequence[Any],
    items: Sequence[Any],
    options: EngineOptions | None = None,
) -> list[Outcome] | None:
    """``evaluate_many`` for a top-level python grader, blocking this thread; no event loop.

    For callers that may block (TRL's reward function): one ``pool.run_batch_rows`` call.
    Returns ``None`` when ``spec`` is not a python grader or the pool has no blocking batch
    call (then use ``evaluate_many``). Never raises.
    """
    if spec.get("type") != "python" or not spec.get("source"):
        return None
    options = options or EngineOptions()
    try:
        pool = options.get_pool()
    except Exception:  # evaluate_many reports it on every row
        return None
    run_batch_rows = getattr(pool, "run_batch_rows", None)
    if run_batch_rows is None:
        return None
    start = time.perf_counter()
    parsed = _compact_rows(samples, items)
    rows = [row for row in parsed if not isinstance(row, Outcome)]
    results: list[Any] = []
    if rows:
        try:
            results = run_batch_rows(
                spec["source"], [row[0] for row in rows], [row[1] for row in rows]
            )
        except Exception as exc:  # a closed pool, a worker that cannot start, required isolation
            results = [exc] * len(rows)
    share = (time.perf_counter() - start) / len(parsed) if parsed else 0.0
    answers = iter(results)
    scored: dict[float, Outcome] = {}  # Outcomes are immutable: one per distinct score
    outcomes: list[Outcome] = []
    for row in parsed:
        if isinstance(row, Outcome):
            outcomes.append(row)
            continue
        answer = next(answers)
        if isinstance(answer, Exception):
            outcomes.append(_python_outcome(answer, share))
            continue
        score, error, kind = answer[0], answer[1], answer[2]
        if error is None and kind is None:
            outcome = scored.get(score)
            if outcome is None:
                outcome = scored[score] = _python_outcome(_Result(score, None, None), share)
        else:
            outcome = _python_outcome(_Result(score, error, kind), share)
        outcomes.append(outcome)
    return outcomes


async def evaluate_many(
    spec: Mapping[str, Any],
    samples: Sequence[Any],
    items: Sequence[Any],
    options: EngineOptions | None = None,
    *,
    concurrency: int = 8,
) -> list[Outcome]:
    """``[evaluate(spec, s, i) for s, i in zip(samples, items)]``, same scores, faster.

    Each python grader in ``spec`` (top level or a sub-grader) grades every row in one
    ``pool.run_batch`` call, one sandbox round trip per worker instead of one per row; the rest
    runs per row with at most ``concurrency`` rows in flight. ``latency_s`` is the batch's time
    shared equally among its rows. Never raises (only cancellation propagates).
    """
    options = options or EngineOptions()
    start = time.perf_counter()
    count = len(samples)
    parsed = _parse_rows(samples, items)
    good = [index for index, row in enumerate(parsed) if not isinstance(row, Outcome)]
    answers: list[dict[str, Any]] = [{} for _ in range(count)]
    sources = list(dict.fromkeys(_python_sources(spec)))
    pool = None
    if sources and good:
        try:
            pool = options.get_pool()
        except Exception as exc:  # no sandbox module, or a bad RLFT_GRADER_ISOLATION
            for index in good:  # each row reports it, through _python
                answers[index] = {source: exc for source in sources}
    if pool is not None and hasattr(pool, "run_batch"):
        rows = [row for row in parsed if not isinstance(row, Outcome)]

        async def batch(source: str) -> None:
            try:
                results: list[Any] = await pool.run_batch(
                    source, [row[0] for row in rows], [row[1] for row in rows]
                )
            except Exception as exc:  # a closed pool, a worker that cannot start
                results = [exc] * len(good)
            for index, result in zip(good, results, strict=True):
                answers[index][source] = result

        if len(sources) == 1:
            await batch(sources[0])
        else:
            async with anyio.create_task_group() as group:
                for source in sources:
                    group.start_soon(batch, source)

    async def one(index: int) -> Outcome:
        row = parsed[index]
        if isinstance(row, Outcome):
            return row
        row_options = options
        if answers[index]:
            row_options = replace(options, pool=_Answered(answers[index]))
        return await _run(spec, row[0], row[1], row_options)

    batched = pool is not None and hasattr(pool, "run_batch")
    if batched and spec.get("type") == "python":  # the common case, without a _run per row
        share = (time.perf_counter() - start) / count
        (source,) = sources
        return [
            row if isinstance(row, Outcome) else _python_outcome(answers[index][source], share)
            for index, row in enumerate(parsed)
        ]
    if _waits_beyond_python(spec) or (sources and not batched):
        outcomes = await map_bounded(one, count, concurrency)
    else:  # the python results are in: nothing left waits, so no task per row
        outcomes = [await one(index) for index in range(count)]
    share = (time.perf_counter() - start) / count if count else 0.0
    return [replace(outcome, latency_s=share) for outcome in outcomes]


# -- model graders ---------------------------------------------------------------------------

# OpenAI asks its grader model for {"result": float, "steps": [...]} (reference §2.5).
_STEPS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"description": {"type": "string"}, "conclusion": {"type": "string"}},
        "required": ["description", "conclusion"],
        "additionalProperties": False,
    },
}


def score_schema() -> dict[str, Any]:
    """The JSON schema a ``score_model`` judge answers in."""
    return {
        "type": "object",
        "properties": {"steps": _STEPS, "result": {"type": "number"}},
        "required": ["steps", "result"],
        "additionalProperties": False,
    }


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema a ``label_model`` judge answers in: one of ``labels``."""
    return {
        "type": "object",
        "properties": {"result": {"type": "string", "enum": list(labels)}},
        "required": ["result"],
        "additionalProperties": False,
    }


def _first_json_object(text: str) -> Any:
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for index, char in enumerate(stripped):
        if char == "{":
            try:
                return decoder.raw_decode(stripped, index)[0]
            except ValueError:
                continue
    return None


def _steps_reason(answer: Mapping[str, Any]) -> str | None:
    steps = answer.get("steps")
    if isinstance(steps, list):
        conclusions = [str(step.get("conclusion")) for step in steps if isinstance(step, Mapping)]
        text = " ".join(c for c in conclusions if c and c != "None")
        return text[:2000] or None
    return None


def parse_score(text: str, low: float, high: float) -> Outcome:
    """Read a ``score_model`` answer: ``{"result": n}`` (or a bare number), clamped to range."""
    answer = _first_json_object(text)
    value: Any = answer.get("result") if isinstance(answer, Mapping) else answer
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _fail("model_parse", f"judge answer has no numeric result: {text[:300]!r}")
    reason = _steps_reason(answer) if isinstance(answer, Mapping) else None
    return Outcome(score=min(high, max(low, float(value))), reason=reason)


def parse_label(text: str, labels: Sequence[str], passing: Sequence[str]) -> Outcome:
    """Read a ``label_model`` answer: ``{"result": label}`` or the bare label; 1.0 if passing."""
    answer = _first_json_object(text)
    label: Any = answer.get("result") if isinstance(answer, Mapping) else None
    if label is None and text.strip() in labels:
        label = text.strip()
    if not isinstance(label, str) or label not in labels:
        return _fail("model_parse", f"judge answer is not one of {list(labels)}: {text[:300]!r}")
    passed = label in passing
    return Outcome(score=1.0 if passed else 0.0, reason=f"label {label!r}")


def _chat_content(content: Any, sample: dict[str, Any], item: dict[str, Any]) -> Any:
    if isinstance(content, str):
        return _render(content, sample, item)
    if isinstance(content, Mapping):  # one content part, not in a list (OpenAI's types allow it)
        content = [content]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):  # plain strings may sit among the parts
            parts.append({"type": "text", "text": _render(part, sample, item)})
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": _render(part["text"], sample, item)})
        elif kind in IMAGE_PART_TYPES:
            image: dict[str, Any] = {"url": _image_url(part, sample, item)}
            inner = part.get("image_url")
            detail = part.get("detail") or (
                inner.get("detail") if isinstance(inner, Mapping) else None
            )
            if detail:
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_audio":
            audio = dict(part.get("input_audio") or {})
            if isinstance(audio.get("data"), str):
                audio["data"] = _render(audio["data"], sample, item)
            parts.append({"type": "input_audio", "input_audio": audio})
        else:
            raise TemplateRenderError(f"unsupported content part type {kind!r}", kind="other")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _image_url(part: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any]) -> str:
    """An image part's URL, rendered. ``{{ item.image }}`` alone may name a URL string or a
    whole image part in the row (``{"type": "image_url", "image_url": {"url": ...}}``)."""
    source = part.get("image_url")
    if isinstance(source, Mapping):  # the chat shape: {"url": ...}
        source = source.get("url")
    if not isinstance(source, str):
        raise TemplateRenderError("an image part has no image_url string", kind="other")
    template = _template(source)
    if len(template.parts) == 1 and isinstance(template.parts[0], Variable):
        value = template.parts[0].resolve(sample, item)
        url = image_url_of(value)
        if url is None:
            raise TemplateRenderError(
                f"{{{{ {template.parts[0].text} }}}} is not an image (a URL, a data URL or an "
                "image part)",
                kind="invalid_variable",
            )
        return url
    return template.render(sample, item)


def judge_messages(
    spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any]
) -> list[dict[str, Any]]:
    """Render a model grader's ``input`` into Chat-Completions messages.

    ``developer`` becomes ``system``, which every OpenAI-compatible server understands.
    """
    messages: list[dict[str, Any]] = []
    for message in spec["input"]:
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append({"role": role, "content": _chat_content(message["content"], sample, item)})
    return messages


async def _model(
    spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any], options: EngineOptions
) -> Outcome:
    messages = judge_messages(spec, sample, item)
    schema = score_schema() if spec["type"] == "score_model" else label_schema(spec["labels"])
    request = JudgeRequest(
        model=spec["model"],
        messages=messages,
        schema=schema,
        sampling=dict(spec.get("sampling_params") or {}),
    )
    try:
        response = await options.get_judge().complete(request)
    except JudgeError as exc:
        return _fail("model_server", str(exc))
    if spec["type"] == "score_model":
        low, high = spec.get("range") or (0.0, 1.0)
        return parse_score(response.text, float(low), float(high))
    return parse_label(response.text, spec["labels"], spec["passing_labels"])


# -- multi -------------------------------------------------------------------------------------


def _waits(spec: Mapping[str, Any]) -> bool:
    """Whether a sub-grader waits on I/O (a sandbox, a judge, an embedder)."""
    kind = spec.get("type")
    if kind == "text_similarity":
        return spec.get("evaluation_metric") == "cosine"
    return kind in ("python", "score_model", "label_model", "native")


def waits_on_io(spec: Mapping[str, Any]) -> bool:
    """Whether grading ``spec`` ever waits on I/O; ``False`` allows ``evaluate_inline``."""
    if spec.get("type") == "multi":
        return any(_waits(sub) for sub in spec["graders"].values())
    return _waits(spec)


def evaluate_inline(
    spec: Mapping[str, Any], sample: Any, item: Any, options: EngineOptions | None = None
) -> Outcome:
    """``evaluate`` without an event loop, for graders that never wait (``waits_on_io`` False).

    Such a coroutine finishes on its first step, so it is driven right here: the same code and
    semantics as ``evaluate``, minus a thread hop per batch (TRL calls the reward every step).
    """
    coroutine = evaluate(spec, sample, item, options)
    try:
        coroutine.send(None)
    except StopIteration as finished:
        outcome: Outcome = finished.value
        return outcome
    coroutine.close()
    raise RuntimeError(f"grader {spec.get('name')!r} waited on I/O; use evaluate()")


async def _multi(
    spec: Mapping[str, Any], sample: dict[str, Any], item: dict[str, Any], options: EngineOptions
) -> Outcome:
    graders: Mapping[str, Mapping[str, Any]] = spec["graders"]
    results: dict[str, Outcome] = {}

    async def one(key: str, sub: Mapping[str, Any]) -> None:
        start = time.perf_counter()
        outcome = await _run(sub, sample, item, options)
        results[key] = replace(outcome, latency_s=time.perf_counter() - start)

    if any(_waits(sub) for sub in graders.values()):
        async with anyio.create_task_group() as group:
            for key, sub in graders.items():
                group.start_soon(one, key, sub, name=f"rlft-grade-{key}")
    else:  # all CPU-bound and quick: a task group per sample would cost more than the grading
        for key, sub in graders.items():
            await one(key, sub)
    ordered = {key: results[key] for key in graders}
    # A failed sub-grader scores 0 in the formula, as on OpenAI; its error stays in `sub` (and in
    # `all_errors`), so the failure is counted. Only a formula that cannot be evaluated fails the
    # multi as a whole.
    failed = [key for key, outcome in ordered.items() if outcome.errors]
    reason = None
    if failed:
        details = "; ".join(f"{key}: {ordered[key].reason}" for key in failed)
        reason = f"sub-grader failed and scored 0 ({details})"
    formula = _formula(spec["calculate_output"], frozenset(graders))
    try:
        score = formula.evaluate({key: outcome.score for key, outcome in ordered.items()})
    except FormulaError as exc:
        why = f"{exc}; {reason}" if reason else str(exc)
        return Outcome(score=0.0, errors=("formula",), reason=why, sub=ordered)
    return Outcome(score=score, reason=reason, sub=ordered)
