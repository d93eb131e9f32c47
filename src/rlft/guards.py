"""Guards: watch a job's events and stop a run that games its grader, burns money or stalls.

Attach guards to a ``JobManager`` (or ``rlft run --max-gap/--budget/--stall``); the manager
feeds each guard every event and status of every job it watches, and acts on a trip:

    guards = [
        RewardGapGuard(threshold=0.15, evaluations=3),          # train - valid > 0.15, 3 evals
        BudgetGuard(limit=500.0),                                # estimated USD, documented rates
        StallGuard(after=30 * 60),                               # no new step for 30 minutes
    ]
    manager = rlft.JobManager(client=client, guards=guards)

A guard trips at most once per job. Its ``action`` is ``"pause"`` (the default: a paused job
keeps a resumable checkpoint), ``"cancel"`` or ``"alert"`` (report only). Where a backend
cannot pause (Bedrock), the ``fallback`` runs instead: ``"alert"`` by default, ``"cancel"``
only when you say so, because cancelling throws away paid training.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from rlft._models import JobEvent, JobStatus
from rlft.exceptions import RLFTError, UsageError

if TYPE_CHECKING:
    from rlft._job import Job
    from rlft._models import StepMetrics

__all__ = [
    "BudgetGuard",
    "default_rates",
    "enforce",
    "GraderHealth",
    "GraderHealthGuard",
    "Guard",
    "GuardAction",
    "GuardTrip",
    "RateTable",
    "RewardGapGuard",
    "StallGuard",
]

GuardAction = Literal["pause", "cancel", "alert"]
Fallback = Literal["cancel", "alert"]
S = TypeVar("S")


@dataclass(frozen=True, kw_only=True)
class GuardTrip:
    """A guard's verdict on one job, and what was done about it.

    Attributes:
        guard: The guard's name (``"reward_gap"``, ``"budget"``, ``"stall"``).
        job_id: The backend's job id.
        action: What the guard asked for.
        reason: Why, in words, with the numbers.
        data: The numbers behind the reason.
        taken: What was done: ``"paused"``, ``"cancelled"`` or ``"alerted"`` (``None`` until
            ``enforce`` ran).
        note: Why ``taken`` differs from ``action``, when it does.
    """

    guard: str
    job_id: str
    action: GuardAction
    reason: str
    data: Mapping[str, float] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    taken: str | None = None
    note: str | None = None


class Guard(abc.ABC, Generic[S]):
    """Base class: per-job state, trip-once bookkeeping, and the action to take.

    Subclasses implement ``_new_state`` and ``_observe`` (and ``_check`` for time-based rules).

    Args:
        action: What to do on a trip: ``"pause"``, ``"cancel"`` or ``"alert"``.
        fallback: What to do when ``action`` is ``"pause"`` and the backend cannot pause.
    """

    name: ClassVar[str]

    def __init__(self, *, action: GuardAction = "pause", fallback: Fallback = "alert") -> None:
        if action not in ("pause", "cancel", "alert"):
            raise UsageError(f"guard action must be pause, cancel or alert, not {action!r}")
        if fallback not in ("cancel", "alert"):
            raise UsageError(f"guard fallback must be cancel or alert, not {fallback!r}")
        self.action: GuardAction = action
        self.fallback: Fallback = fallback
        self._states: dict[str, S] = {}
        self._tripped: set[str] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} action={self.action!r}>"

    @staticmethod
    def _key(job: Job) -> str:
        return f"{job.provider}:{job.id}"

    def _state(self, job: Job) -> S:
        key = self._key(job)
        if key not in self._states:
            self._states[key] = self._new_state()
        return self._states[key]

    def start(self, job: Job) -> None:  # noqa: B027 - optional hook
        """Called when watching starts; raise ``UsageError`` if the guard cannot work here."""

    def tripped(self, job: Job) -> bool:
        """True once the guard tripped on this job."""
        return self._key(job) in self._tripped

    def observe(self, job: Job, event: JobEvent) -> GuardTrip | None:
        """Feed one event; return a trip the first time the rule breaks."""
        state = self._state(job)
        reason = self._observe(job, state, event)
        return self._trip(job, reason)

    def check(self, job: Job) -> GuardTrip | None:
        """Check after a status refresh (time-based rules); return a trip the first time."""
        return self._trip(job, self._check(job, self._state(job)))

    def describe(self, job: Job) -> str:
        """A short status line for live views."""
        return "tripped" if self.tripped(job) else "ok"

    def _trip(self, job: Job, found: tuple[str, Mapping[str, float]] | None) -> GuardTrip | None:
        if found is None or self.tripped(job):
            return None
        self._tripped.add(self._key(job))
        reason, data = found
        return GuardTrip(
            guard=self.name, job_id=job.id, action=self.action, reason=reason, data=dict(data)
        )

    @abc.abstractmethod
    def _new_state(self) -> S: ...

    @abc.abstractmethod
    def _observe(
        self, job: Job, state: S, event: JobEvent
    ) -> tuple[str, Mapping[str, float]] | None: ...

    def _check(self, job: Job, state: S) -> tuple[str, Mapping[str, float]] | None:
        return None


async def enforce(job: Job, trip: GuardTrip, *, fallback: Fallback = "alert") -> GuardTrip:
    """Carry out a trip's action on the job; return the trip with ``taken`` filled in.

    Pausing needs the backend's ``pause`` capability and a running job; otherwise ``fallback``
    runs. A failing pause or cancel is reported in ``note``, never raised: a guard must not
    crash the watcher that called it.
    """
    action = trip.action
    note = None
    if action == "pause":
        if not job.capabilities.pause_job:
            note = f"provider {job.provider!r} cannot pause"
            action = fallback
        elif job.status is not JobStatus.RUNNING:
            note = f"the job is {job.status.value}, not running: nothing to pause"
            action = "alert"
    if action == "cancel" and job.status.is_terminal:
        note, action = f"the job already ended ({job.status.value})", "alert"
    try:
        if action == "pause":
            await job.pause()
            return dataclasses.replace(trip, taken="paused", note=note)
        if action == "cancel":
            await job.cancel()
            return dataclasses.replace(trip, taken="cancelled", note=note)
    except RLFTError as exc:
        failed = f"{action} failed: {exc}"
        return dataclasses.replace(
            trip, taken="alerted", note=f"{note}; {failed}" if note else failed
        )
    return dataclasses.replace(trip, taken="alerted", note=note)


# --- reward gap -------------------------------------------------------------------------------


@dataclass
class _GapState:
    streak: int = 0
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=64))


class RewardGapGuard(Guard[_GapState]):
    """Trips when training reward runs away from validation reward: the grader is being gamed.

    Two rules, checked on each evaluation (a metrics event with both train and validation
    reward):

    - the gap ``train - valid`` is above ``threshold`` for ``evaluations`` evaluations in a row;
    - (``divergence=True``) validation reward fell and training reward rose at each of the last
      ``evaluations`` evaluations.

    Args:
        threshold: The largest acceptable ``train - valid`` gap.
        evaluations: How many evaluations in a row the rule must hold (N).
        divergence: Also trip on validation falling while training rises.
        action: ``"pause"`` (default), ``"cancel"`` or ``"alert"``.
        fallback: When the backend cannot pause: ``"alert"`` (default) or ``"cancel"``.
    """

    name: ClassVar[str] = "reward_gap"

    def __init__(
        self,
        *,
        threshold: float = 0.2,
        evaluations: int = 3,
        divergence: bool = True,
        action: GuardAction = "pause",
        fallback: Fallback = "alert",
    ) -> None:
        super().__init__(action=action, fallback=fallback)
        if threshold < 0 or evaluations < 1:
            raise UsageError("RewardGapGuard needs threshold >= 0 and evaluations >= 1")
        self.threshold = threshold
        self.evaluations = evaluations
        self.divergence = divergence

    def _new_state(self) -> _GapState:
        return _GapState()

    def _observe(
        self, job: Job, state: _GapState, event: JobEvent
    ) -> tuple[str, Mapping[str, float]] | None:
        metrics = event.metrics
        if metrics is None or metrics.train_reward_mean is None:
            return None
        if metrics.valid_reward_mean is None:
            return None
        train, valid = metrics.train_reward_mean, metrics.valid_reward_mean
        state.history.append((train, valid))
        gap = train - valid
        state.streak = state.streak + 1 if gap > self.threshold else 0
        data = {"train_reward_mean": train, "valid_reward_mean": valid, "gap": gap}
        if metrics.step is not None:
            data["step"] = float(metrics.step)
        if state.streak >= self.evaluations:
            return (
                f"train - validation reward gap {gap:.3f} above {self.threshold:g} for "
                f"{state.streak} evaluations in a row (train {train:.3f}, valid {valid:.3f})",
                data,
            )
        recent = list(state.history)[-(self.evaluations + 1) :]
        if self.divergence and len(recent) == self.evaluations + 1:
            pairs = list(zip(recent, recent[1:], strict=False))
            if all(b[0] > a[0] and b[1] < a[1] for a, b in pairs):
                return (
                    f"validation reward fell {recent[0][1]:.3f} -> {valid:.3f} while training "
                    f"reward rose {recent[0][0]:.3f} -> {train:.3f} over {self.evaluations} "
                    "evaluations",
                    data,
                )
        return None

    def describe(self, job: Job) -> str:
        state = self._state(job)
        if self.tripped(job):
            return "gap: tripped"
        if not state.history:
            return "gap: no evaluation yet"
        train, valid = state.history[-1]
        return (
            f"gap {train - valid:+.2f} (max {self.threshold:g}, {state.streak}/{self.evaluations})"
        )


# --- budget -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RateTable:
    """Prices the budget guard estimates spend from. Data: copy ``default_rates()`` and change it.

    Attributes:
        training_per_hour: USD per hour of training, keyed ``"provider"`` or
            ``"provider:model-prefix"`` (the longest matching prefix wins).
        grader_tokens_per_million: USD per million grader-model tokens, keyed by model prefix,
            as ``(input, output)``.
    """

    training_per_hour: Mapping[str, float] = field(default_factory=dict)
    grader_tokens_per_million: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def hourly(self, provider: str, model: str | None) -> float | None:
        """The hourly training rate for a provider's model, or ``None`` if unknown."""
        best: tuple[int, float] | None = None
        for key, rate in self.training_per_hour.items():
            name, _, prefix = key.partition(":")
            if name != provider or (prefix and not (model or "").startswith(prefix)):
                continue
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), rate)
        return best[1] if best else None

    def tokens(self, model: str) -> tuple[float, float] | None:
        """``(input, output)`` USD per million tokens for a grader model, or ``None``."""
        matches = [key for key in self.grader_tokens_per_million if model.startswith(key)]
        return self.grader_tokens_per_million[max(matches, key=len)] if matches else None


def default_rates() -> RateTable:
    """The rates every installed backend declares (``ProviderSpec.rates``), as one table.

    Only documented prices: a backend that publishes none declares none, and the guard then asks
    for ``rates=``. ``DEFAULT_RATES`` is this table, built on first use.
    """
    from rlft._plugins import find_provider, known_providers

    training: dict[str, float] = {}
    tokens: dict[str, tuple[float, float]] = {}
    for name in known_providers():
        spec = find_provider(name)
        if spec is None or spec.rates is None:
            continue
        for prefix, rate in spec.rates.training_per_hour.items():
            training[f"{name}:{prefix}" if prefix else name] = float(rate)
        for model, (prompt, completion) in spec.rates.grader_tokens_per_million.items():
            tokens[model] = (float(prompt), float(completion))
    return RateTable(training_per_hour=training, grader_tokens_per_million=tokens)


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_RATES":  # built from the backends' declarations, on first use
        return default_rates()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class _BudgetState:
    step_seconds: float = 0.0
    last_metrics_at: datetime | None = None
    tokens: dict[str, float] = field(default_factory=dict)
    spend: float = 0.0
    unpriced: set[str] = field(default_factory=set)


def _grader_tokens(tokens: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """``model_graders/<model>/<kind>_tokens`` counts as ``{model: (prompt, completion)}``."""
    totals: dict[str, tuple[float, float]] = {}
    for key, value in tokens.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "model_graders" or "cached" in parts[2]:
            continue
        prompt, completion = totals.get(parts[1], (0.0, 0.0))
        if "prompt" in parts[2]:
            prompt += value
        elif "completion" in parts[2]:
            completion += value
        totals[parts[1]] = (prompt, completion)
    return totals


class BudgetGuard(Guard[_BudgetState]):
    """Trips when the estimated spend of a job reaches ``limit`` (USD).

    Spend = training hours x the hourly rate for the job's provider and model + grader-model
    tokens x their rates. Training time is the sum of reported step times (``step_seconds``),
    or, for steps that don't report one, the time between consecutive metrics events. Grader
    tokens are the ``model_graders/...`` counts in metrics, read as running totals (the latest
    value counts; OpenAI's events look cumulative, which the reference leaves unconfirmed).

    Args:
        limit: The spend cap in USD.
        rates: The price table (default ``default_rates()``: what each backend declares in
            ``ProviderSpec.rates``, documented prices only).
        action: ``"pause"`` (default), ``"cancel"`` or ``"alert"``.
        fallback: When the backend cannot pause: ``"alert"`` (default) or ``"cancel"``.

    Raises:
        UsageError: When watching starts on a job whose training rate is not in ``rates``.
    """

    name: ClassVar[str] = "budget"

    def __init__(
        self,
        *,
        limit: float,
        rates: RateTable | None = None,
        action: GuardAction = "pause",
        fallback: Fallback = "alert",
    ) -> None:
        super().__init__(action=action, fallback=fallback)
        if limit <= 0:
            raise UsageError(f"BudgetGuard limit must be positive, got {limit}")
        self.limit = limit
        self.rates = rates or default_rates()

    def start(self, job: Job) -> None:
        self.check_rate(job.provider, job.record.model)

    def check_rate(self, provider: str, model: str | None) -> None:
        """Raise ``UsageError`` unless ``rates`` prices training of ``model`` on ``provider``."""
        if self.rates.hourly(provider, model) is None:
            known = ", ".join(sorted(self.rates.training_per_hour)) or "none"
            raise UsageError(
                f"BudgetGuard has no training rate for provider {provider!r} model "
                f"{model!r} (known: {known}); pass rates=RateTable("
                f"training_per_hour={{'{provider}': <USD per hour>}}) with your price "
                "(CLI: --rate)"
            )

    def _new_state(self) -> _BudgetState:
        return _BudgetState()

    def spend(self, job: Job) -> float:
        """The spend estimated so far, in USD."""
        return self._state(job).spend

    def _observe(
        self, job: Job, state: _BudgetState, event: JobEvent
    ) -> tuple[str, Mapping[str, float]] | None:
        metrics = event.metrics
        if metrics is None:
            return None
        if metrics.step_seconds is not None:
            state.step_seconds += metrics.step_seconds
        elif state.last_metrics_at is not None:
            state.step_seconds += max(0.0, (event.at - state.last_metrics_at).total_seconds())
        state.last_metrics_at = event.at
        for key, value in metrics.tokens.items():
            state.tokens[key] = max(value, state.tokens.get(key, 0.0))
        hourly = self.rates.hourly(job.provider, job.record.model) or 0.0
        training = state.step_seconds / 3600 * hourly
        grading = 0.0
        for model, (prompt, completion) in _grader_tokens(state.tokens).items():
            price = self.rates.tokens(model)
            if price is None:
                state.unpriced.add(model)
                continue
            grading += prompt / 1e6 * price[0] + completion / 1e6 * price[1]
        state.spend = training + grading
        data = {
            "spend": state.spend,
            "limit": self.limit,
            "training_hours": state.step_seconds / 3600,
            "training_usd": training,
            "grader_usd": grading,
        }
        if state.spend >= self.limit:
            unpriced = (
                f"; grader tokens of {', '.join(sorted(state.unpriced))} not priced"
                if state.unpriced
                else ""
            )
            return (
                f"estimated spend ${state.spend:,.2f} reached the ${self.limit:,.2f} budget "
                f"({state.step_seconds / 3600:.2f} h training ${training:,.2f}, graders "
                f"${grading:,.2f}{unpriced})",
                data,
            )
        return None

    def describe(self, job: Job) -> str:
        state = self._state(job)
        text = f"${state.spend:,.2f} of ${self.limit:,.2f}"
        return f"budget {text}" + (" (tripped)" if self.tripped(job) else "")


# --- stall ------------------------------------------------------------------------------------


@dataclass
class _StallState:
    step: int = -1
    since: float | None = None
    """Clock time of the last progress while running; ``None`` while not running."""


class StallGuard(Guard[_StallState]):
    """Trips when a running job makes no progress (no new training step) for ``after`` seconds.

    The clock runs only while the job is ``running``: pending, pausing and paused time never
    counts, and a status change restarts it. On backends that report no step metrics (Bedrock's
    native jobs) only status changes count as progress, so set ``after`` above the job's length.

    Args:
        after: Seconds without a new step before it trips.
        action: ``"pause"`` (default), ``"cancel"`` or ``"alert"``.
        fallback: When the backend cannot pause: ``"alert"`` (default) or ``"cancel"``.
        clock: Seconds from a monotonic clock (``time.monotonic``).
    """

    name: ClassVar[str] = "stall"

    def __init__(
        self,
        *,
        after: float,
        action: GuardAction = "pause",
        fallback: Fallback = "alert",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(action=action, fallback=fallback)
        if after <= 0:
            raise UsageError(f"StallGuard after= must be positive seconds, got {after}")
        self.after = after
        self._clock = clock

    def _new_state(self) -> _StallState:
        return _StallState()

    def _observe(
        self, job: Job, state: _StallState, event: JobEvent
    ) -> tuple[str, Mapping[str, float]] | None:
        step = event.metrics.step if event.metrics is not None else None
        if step is not None and step > state.step:
            state.step = step
            if state.since is not None:
                state.since = self._clock()
        return None

    def _check(self, job: Job, state: _StallState) -> tuple[str, Mapping[str, float]] | None:
        if job.status is not JobStatus.RUNNING:
            state.since = None
            return None
        now = self._clock()
        if state.since is None:
            state.since = now
            return None
        idle = now - state.since
        if idle >= self.after:
            last = f"step {state.step}" if state.step >= 0 else "no step yet"
            return (
                f"no training progress for {idle:.0f}s (limit {self.after:g}s; {last})",
                {"idle_seconds": idle, "after": self.after, "step": float(state.step)},
            )
        return None

    def describe(self, job: Job) -> str:
        state = self._state(job)
        if self.tripped(job):
            return "stall: tripped"
        if state.since is None:
            return "stall: clock stopped"
        return f"idle {self._clock() - state.since:.0f}s of {self.after:g}s"


# --- grader health --------------------------------------------------------------------------


def _error_kinds(metrics: StepMetrics) -> dict[tuple[str, str], float]:
    """Per-grader error rates by kind, from the two shapes backends report in ``extra``.

    The local runner: ``<grader>/errors/<kind>`` (``<multi>/<sub>/errors/<kind>`` for a
    sub-grader). OpenAI and Azure (``rlft.openai_compat``): ``errors/<grader>/train_<kind>_mean``.
    """
    found: dict[tuple[str, str], float] = {}
    for key, rate in metrics.extra.items():
        parts = key.split("/")
        if len(parts) >= 3 and parts[-2] == "errors" and not parts[0].startswith("eval_"):
            found[("/".join(parts[:-2]), parts[-1])] = rate  # "multi/sub" names a sub-grader
        elif len(parts) == 3 and parts[0] == "errors" and parts[2].startswith("train_"):
            kind = parts[2].removeprefix("train_").removesuffix("_mean")
            if kind.endswith("error"):
                found[(parts[1], kind)] = rate
    return found


class GraderHealth:
    """The grader-health rule for one job: feed it step metrics; it says when the rule breaks.

    A step's error rate is the larger of ``grader_error_rate`` and ``parse_error_rate`` (parse
    errors, runtime errors, timeouts). The rule breaks when it is above ``threshold`` for
    ``steps`` steps in a row. Metrics without error rates don't count, and a step already seen
    (a checkpoint repeats its step's metrics) counts once. ``GraderHealthGuard`` applies it to
    watched jobs; the local runner's worker applies it to its own steps.

    Args:
        threshold: The largest acceptable share of failed grades in a step (0-1).
        steps: How many steps in a row the rate must stay above ``threshold``.
    """

    def __init__(self, *, threshold: float = 0.5, steps: int = 3) -> None:
        if not 0 <= threshold < 1 or steps < 1:
            raise UsageError(
                f"grader health needs 0 <= threshold < 1 and steps >= 1, got threshold="
                f"{threshold}, steps={steps}"
            )
        self.threshold = threshold
        self.steps = steps
        self.streak = 0
        self.last_step: int | None = None

    def observe(
        self, metrics: StepMetrics, *, example: str | None = None
    ) -> tuple[str, dict[str, float]] | None:
        """Count one step; return ``(reason, data)`` when the rule breaks.

        Args:
            metrics: A step's metrics.
            example: One failed grade's reason at this step, to quote (the local runner
                reports it in the metrics event's ``raw["grader_error"]``).
        """
        rates = [r for r in (metrics.grader_error_rate, metrics.parse_error_rate) if r is not None]
        if not rates:
            return None
        if metrics.step is not None:
            if self.last_step is not None and metrics.step <= self.last_step:
                return None
            self.last_step = metrics.step
        rate = max(rates)
        self.streak = self.streak + 1 if rate > self.threshold else 0
        if self.streak < self.steps:
            return None
        kinds = _error_kinds(metrics)
        if kinds:
            # the highest rate; on a tie the most specific name (a sub-grader over its multi)
            (grader, kind), kind_rate = max(
                kinds.items(), key=lambda item: (item[1], item[0][0].count("/"))
            )
            top = f"top error {kind} ({kind_rate:.0%} of grades)"
        else:
            names = list(metrics.grader_rewards)
            grader = names[0] if len(names) == 1 else "?"
            kind_rate, top = rate, "the backend did not say which error"
            if metrics.parse_error_rate is not None and metrics.parse_error_rate >= rate:
                top = "top error sample_parse (the model's output could not be parsed)"
        if example:
            top += f": {example[:300]}"
        data = {"error_rate": rate, "threshold": self.threshold, "steps": float(self.streak)}
        if metrics.step is not None:
            data["step"] = float(metrics.step)
        named = f"grader {grader!r}" if grader != "?" else "the grader"
        return (
            f"{named} failed on {rate:.0%} of grades for {self.streak} steps in a row (limit "
            f"{self.threshold:.0%}); {top}. Training on failed grades learns nothing: fix the "
            "grader (`rlft grade` shows each error) and resume or start again",
            data,
        )


class GraderHealthGuard(Guard[GraderHealth]):
    """Trips when a job's grader keeps failing: a misconfigured grader never trains in silence.

    On by default in ``JobManager`` and ``rlft run`` / ``rlft jobs watch`` (switch off with
    ``JobManager(guards=[])`` or ``--no-grader-guard``). It reads the error rates each backend's
    metrics carry: the local runner's reward-function counters, OpenAI's and Azure's
    ``errors`` section. Backends that report no error rates (Bedrock) never trip it. The local
    runner's worker also applies the same rule itself, so a local job stops even when nobody
    watches (see docs/providers/local.md).

    Args:
        threshold: The largest acceptable share of failed grades in a step (default: 50%).
        steps: Steps in a row above ``threshold`` before it trips (default: 3).
        action: ``"pause"`` (default), ``"cancel"`` or ``"alert"``.
        fallback: When the backend cannot pause: ``"cancel"`` (default: a job whose every grade
            fails trains on nothing) or ``"alert"``.
    """

    name: ClassVar[str] = "grader_health"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        steps: int = 3,
        action: GuardAction = "pause",
        fallback: Fallback = "cancel",
    ) -> None:
        super().__init__(action=action, fallback=fallback)
        GraderHealth(threshold=threshold, steps=steps)  # checks the values now, not per job
        self.threshold = threshold
        self.steps = steps

    def _new_state(self) -> GraderHealth:
        return GraderHealth(threshold=self.threshold, steps=self.steps)

    def _observe(
        self, job: Job, state: GraderHealth, event: JobEvent
    ) -> tuple[str, Mapping[str, float]] | None:
        if event.metrics is None:
            return None
        example = (event.raw or {}).get("grader_error")
        return state.observe(event.metrics, example=example if isinstance(example, str) else None)

    def describe(self, job: Job) -> str:
        state = self._state(job)
        if self.tripped(job):
            return "grader: tripped"
        return f"grader errors {state.streak}/{self.steps} steps over {self.threshold:.0%}"
