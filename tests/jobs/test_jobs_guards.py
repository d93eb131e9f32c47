"""Guards on FakeProvider event scripts: reward gap, budget, stall; pause, fallbacks, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from jobs_helpers import make_client, spec

from rlft import JobStatus
from rlft._job import Job
from rlft._manager import JobManager, JobUpdate
from rlft._models import JobEvent, JobRecord, StepMetrics
from rlft.exceptions import UsageError
from rlft.guards import (
    BudgetGuard,
    GraderHealth,
    GraderHealthGuard,
    RateTable,
    RewardGapGuard,
    StallGuard,
    default_rates,
    enforce,
)
from rlft.openai_compat import to_step_metrics
from rlft.testing import FakeProvider, FakeSettings

pytestmark = pytest.mark.anyio


def script(*pairs: tuple[float, float], **step: Any) -> list[dict[str, Any]]:
    return [{"train_reward_mean": t, "valid_reward_mean": v, **step} for t, v in pairs]


async def run_guarded(
    tmp_path: Path,
    guards: list[Any],
    steps: list[dict[str, Any]],
    *,
    provider: str = "fake",
    **settings: Any,
) -> tuple[Any, list[JobUpdate], Any]:
    client = make_client(
        tmp_path / "jobs.db", provider=provider, settings={"script": steps, **settings}
    )
    async with client:
        manager = JobManager(client=client, guards=guards)
        (job,) = await manager.submit([spec()])
        seen: list[JobUpdate] = []
        with anyio.fail_after(20):
            async with manager.watch([job]) as updates:
                async for update in updates:
                    seen.append(update)
        provider_obj = client.provider
        return job, seen, provider_obj


def trips(seen: list[JobUpdate]) -> list[Any]:
    return [u.trip for u in seen if u.kind == "guard"]


# --- reward gap -------------------------------------------------------------------------------

HEALTHY = script((0.2, 0.18), (0.3, 0.27), (0.4, 0.38), (0.5, 0.47), (0.6, 0.58), (0.7, 0.66))
GAMED = script((0.2, 0.18), (0.5, 0.25), (0.7, 0.3), (0.8, 0.31), (0.9, 0.3), (0.95, 0.3))


async def test_a_healthy_run_never_trips(tmp_path: Path) -> None:
    guard = RewardGapGuard(threshold=0.2, evaluations=3)
    job, seen, _ = await run_guarded(tmp_path, [guard], HEALTHY)
    assert job.status is JobStatus.SUCCEEDED and trips(seen) == []


async def test_a_widening_gap_pauses_the_job(tmp_path: Path) -> None:
    guard = RewardGapGuard(threshold=0.2, evaluations=3, divergence=False)
    job, seen, provider = await run_guarded(tmp_path, [guard], GAMED)
    (trip,) = trips(seen)
    # Gaps: 0.02, 0.25, 0.40, 0.49: the third gap above 0.2 in a row is step 4.
    assert trip.guard == "reward_gap" and trip.data["step"] == 4
    assert trip.taken == "paused" and "3 evaluations in a row" in trip.reason
    assert job.status is JobStatus.PAUSED  # the stream ended: a paused job waits for you
    assert provider.calls["pause_job"] == 1 and "cancel_job" not in provider.calls
    assert (await provider.get_job(job.id)).status is JobStatus.PAUSED
    statuses = [u.status for u in seen if u.kind == "status"]
    assert statuses[-1] is JobStatus.PAUSED


async def test_validation_falling_while_training_rises_trips(tmp_path: Path) -> None:
    falling = script((0.3, 0.5), (0.35, 0.48), (0.4, 0.46), (0.45, 0.44), (0.5, 0.42))
    guard = RewardGapGuard(threshold=0.5, evaluations=3, action="alert")
    job, seen, provider = await run_guarded(tmp_path, [guard], falling)
    (trip,) = trips(seen)
    assert "fell 0.500 -> 0.440" in trip.reason and trip.taken == "alerted"
    assert job.status is JobStatus.SUCCEEDED and "pause_job" not in provider.calls


async def test_without_pause_the_fallback_decides(tmp_path: Path) -> None:
    guard = RewardGapGuard(threshold=0.2, evaluations=3, divergence=False)
    job, seen, provider = await run_guarded(tmp_path / "a", [guard], GAMED, provider="nopause")
    (trip,) = trips(seen)
    assert trip.taken == "alerted" and "cannot pause" in (trip.note or "")
    assert job.status is JobStatus.SUCCEEDED and "cancel_job" not in provider.calls

    cancelling = RewardGapGuard(threshold=0.2, evaluations=3, divergence=False, fallback="cancel")
    job, seen, provider = await run_guarded(tmp_path / "b", [cancelling], GAMED, provider="nopause")
    (trip,) = trips(seen)
    assert trip.taken == "cancelled" and job.status is JobStatus.CANCELLED


async def test_cancel_action(tmp_path: Path) -> None:
    guard = RewardGapGuard(threshold=0.2, evaluations=2, divergence=False, action="cancel")
    job, seen, _ = await run_guarded(tmp_path, [guard], GAMED)
    assert [t.taken for t in trips(seen)] == ["cancelled"]
    assert job.status is JobStatus.CANCELLED


def test_guard_arguments_are_checked() -> None:
    with pytest.raises(UsageError):
        RewardGapGuard(evaluations=0)
    with pytest.raises(UsageError):
        RewardGapGuard(action="explode")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        BudgetGuard(limit=0)
    with pytest.raises(UsageError):
        StallGuard(after=-1)


# --- budget -----------------------------------------------------------------------------------

RATES = RateTable(
    training_per_hour={"fake": 100.0},
    grader_tokens_per_million={"gpt-4o": (2.5, 10.0)},
)


async def test_budget_trips_at_the_cap_from_step_times(tmp_path: Path) -> None:
    # 600 s per step at $100/h is $16.67 per step: the cap of $40 falls in step 3.
    steps = script(*[(0.5, 0.5)] * 6, step_seconds=600.0)
    guard = BudgetGuard(limit=40.0, rates=RATES)
    job, seen, _ = await run_guarded(tmp_path, [guard], steps)
    (trip,) = trips(seen)
    assert trip.taken == "paused" and job.status is JobStatus.PAUSED
    assert trip.data["training_hours"] == pytest.approx(0.5)
    assert trip.data["spend"] == pytest.approx(50.0)
    assert guard.spend(job) == pytest.approx(50.0)


async def test_budget_counts_grader_tokens_as_running_totals(tmp_path: Path) -> None:
    def tokens(prompt: float, completion: float) -> dict[str, float]:
        return {
            "model_graders/gpt-4o-2024-08-06/train_prompt_tokens": prompt,
            "model_graders/gpt-4o-2024-08-06/train_completion_tokens": completion,
            "model_graders/gpt-4o-2024-08-06/train_cached_tokens": 10**9,  # not billed again
        }

    steps = [
        {"train_reward_mean": 0.5, "step_seconds": 36.0, "tokens": tokens(1e6 * n, 1e5 * n)}
        for n in (1, 2, 3, 4)
    ]
    # Per step: $1 training + the running token totals: 1M in ($2.5) + 0.1M out ($1).
    guard = BudgetGuard(limit=9.0, rates=RATES, action="alert")
    job, seen, _ = await run_guarded(tmp_path, [guard], steps)
    (trip,) = trips(seen)
    assert trip.data["training_usd"] == pytest.approx(2.0)  # tripped at step 2
    assert trip.data["grader_usd"] == pytest.approx(7.0)
    assert job.status is JobStatus.SUCCEEDED  # alert only


async def test_budget_without_step_times_uses_event_spacing(tmp_path: Path) -> None:
    guard = BudgetGuard(limit=1e9, rates=RATES, action="alert")
    job, _, provider = await run_guarded(tmp_path, [guard], script(*[(0.5, 0.5)] * 3))
    events = [e for e in await provider.list_events(job.id) if e.metrics is not None]
    span = (events[-1].at - events[0].at).total_seconds()
    assert span > 0 and guard.spend(job) == pytest.approx(span / 3600 * 100.0)


async def test_budget_without_a_rate_fails_before_watching(tmp_path: Path) -> None:
    async with make_client(tmp_path / "jobs.db") as client:
        manager = JobManager(client=client, guards=[BudgetGuard(limit=10.0)])
        (job,) = await manager.submit([spec()])
        with pytest.raises(UsageError, match=r"no training rate for provider 'fake'.*RateTable"):
            async with manager.watch([job]):
                pass


def test_default_rates_are_the_documented_ones() -> None:
    assert default_rates().hourly("openai", "o4-mini-2025-04-16") == 100.0
    assert default_rates().hourly("azure", "o4-mini") == 100.0
    assert default_rates().hourly("local", None) == 0.0
    assert default_rates().hourly("openai", "gpt-4.1") is None  # no documented RFT price
    assert default_rates().hourly("bedrock", "amazon.nova-2-lite-v1:0:256k") is None
    table = RateTable(training_per_hour={"x": 1.0, "x:big": 5.0, "x:big-v2": 9.0})
    assert (table.hourly("x", "big-v2-1"), table.hourly("x", "big-1"), table.hourly("x", "s")) == (
        9.0,
        5.0,
        1.0,
    )


# --- stall ------------------------------------------------------------------------------------


class Clock:
    """A clock that moves one minute each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


async def test_a_stalled_job_is_paused(tmp_path: Path) -> None:
    steps = script((0.1, 0.1), (0.2, 0.2))
    steps[1]["stall"] = 1_000  # step 2 never comes in this test's lifetime
    guard = StallGuard(after=600, clock=Clock())
    job, seen, _ = await run_guarded(tmp_path, [guard], steps)
    (trip,) = trips(seen)
    assert trip.guard == "stall" and trip.taken == "paused"
    assert trip.data["step"] == 1 and trip.data["idle_seconds"] >= 600
    assert job.status is JobStatus.PAUSED


async def test_steady_progress_never_stalls(tmp_path: Path) -> None:
    guard = StallGuard(after=600, clock=Clock())  # 60 s a read: 10 reads without progress
    job, seen, _ = await run_guarded(tmp_path, [guard], script(*[(0.5, 0.5)] * 8))
    assert trips(seen) == [] and job.status is JobStatus.SUCCEEDED


async def test_paused_time_does_not_count_as_a_stall() -> None:
    guard = StallGuard(after=600, clock=Clock())
    provider = FakeProvider(settings=FakeSettings())

    def job(status: JobStatus) -> Job:
        record = JobRecord(id="j", provider="fake", status=status, provider_status=status.value)
        return Job(provider=provider, record=record)

    for _ in range(50):
        assert guard.check(job(JobStatus.PAUSED)) is None
    assert guard.check(job(JobStatus.RUNNING)) is None  # the clock starts here
    assert guard.check(job(JobStatus.RUNNING)) is None
    for _ in range(8):
        guard.check(job(JobStatus.RUNNING))
    trip = guard.check(job(JobStatus.RUNNING))
    assert trip is not None and trip.data["idle_seconds"] >= 600


# --- restarts ---------------------------------------------------------------------------------


async def test_guards_rebuild_their_state_from_the_store_after_a_restart(tmp_path: Path) -> None:
    db, state = tmp_path / "jobs.db", tmp_path / "state"
    settings = {"state_dir": state, "script": GAMED}
    async with make_client(db, settings=settings) as client:
        (job,) = await JobManager(client=client).submit([spec()])
        # A first watcher without guards reads up to step 3 (gap streak 2) and stops.
        manager = JobManager(client=client)
        async with manager.watch([job]) as updates:
            async for update in updates:
                metrics = update.event.metrics if update.event else None
                if metrics is not None and metrics.step == 3:
                    break
    async with make_client(db, settings=settings) as client:
        guard = RewardGapGuard(threshold=0.2, evaluations=3, divergence=False)
        manager = JobManager(client=client, guards=[guard])
        (again,) = await manager.attach([job.local_id or ""])
        seen: list[JobUpdate] = []
        async with manager.watch([again]) as updates:
            async for update in updates:
                seen.append(update)
        (trip,) = trips(seen)
        # The streak counted steps 2 and 3 from the saved log: step 4 trips it, as it would
        # have without the restart.
        assert trip.data["step"] == 4 and again.status is JobStatus.PAUSED


def test_the_public_guards_module_is_documented() -> None:
    import inspect

    import rlft.guards as module

    assert module.__all__ == sorted(module.__all__, key=str.casefold)
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), f"rlft.guards.{name} has no docstring"


# --- grader health ------------------------------------------------------------------------------


def openai_step(step: int, *, runtime: float, parse: float = 0.0) -> JobEvent:
    """A metrics event as OpenAI sends it (reference/openai_azure.md §1.5), normalised."""
    data = {
        "step": step,
        "total_steps": 20,
        "scores": {
            "train_reward_mean": 0.1,
            "graders": [{"name": "label", "train_reward_mean": 0.1}],
        },
        "errors": {
            "graders": [
                {
                    "name": "label",
                    "type": "python",
                    "train_python_grader_runtime_error_mean": runtime,
                    "train_sample_parse_error_mean": parse,
                    "train_other_error_mean": 0.0,
                    "train_python_grader_runtime_error_count": runtime * 64,
                    "valid_python_grader_runtime_error_mean": 0.0,
                }
            ]
        },
    }
    return JobEvent(
        id=f"e{step}", job_id="j", kind="metrics", metrics=to_step_metrics(data), raw={"data": data}
    )


def local_step(step: int, *, failed: float, example: str | None = None) -> JobEvent:
    """A metrics event as the local runner writes it (its reward function's counters)."""
    step_metrics = StepMetrics(
        step=step,
        train_reward_mean=0.0,
        grader_error_rate=failed,
        grader_rewards={"fail": 0.0},
        extra={"fail/errors/python_runtime": failed, "fail/errors/python_timeout": failed / 4},
    )
    raw = {"grader_error": example} if example else None
    return JobEvent(id=f"e{step}", job_id="j", kind="metrics", metrics=step_metrics, raw=raw)


def metrics(event: JobEvent) -> StepMetrics:
    assert event.metrics is not None
    return event.metrics


def test_grader_health_trips_after_three_steps_over_half_and_names_the_top_error() -> None:
    rule = GraderHealth()
    assert rule.observe(metrics(openai_step(1, runtime=0.9))) is None
    assert rule.observe(metrics(openai_step(2, runtime=0.6))) is None
    verdict = rule.observe(metrics(openai_step(3, runtime=0.55, parse=0.2)))
    assert verdict is not None
    reason, data = verdict
    assert reason.startswith("grader 'label' failed on 55% of grades for 3 steps in a row")
    assert "top error python_grader_runtime_error (55% of grades)" in reason
    assert "rlft grade" in reason  # says what to do
    assert data == {"error_rate": 0.55, "threshold": 0.5, "steps": 3.0, "step": 3.0}


def test_grader_health_needs_consecutive_distinct_steps_over_the_threshold() -> None:
    rule = GraderHealth(threshold=0.5, steps=3)
    seen = [
        rule.observe(m)
        for m in (
            metrics(local_step(1, failed=0.9)),
            metrics(local_step(2, failed=0.5)),  # exactly 50%: not over, the streak restarts
            metrics(local_step(3, failed=0.9)),
            metrics(local_step(4, failed=0.9)),
            metrics(local_step(4, failed=0.9)),  # a checkpoint repeating step 4 counts once
            StepMetrics(step=5, train_reward_mean=0.0),  # no error rates: does not count
        )
    ]
    assert seen == [None] * 6 and rule.streak == 2
    verdict = rule.observe(metrics(local_step(6, failed=1.0)), example="ValueError: nope")
    assert verdict is not None
    assert "grader 'fail' failed on 100% of grades for 3 steps" in verdict[0]
    assert "top error python_runtime (100% of grades): ValueError: nope" in verdict[0]


def test_grader_health_arguments_are_checked() -> None:
    for bad in ({"threshold": 1.0}, {"threshold": -0.1}, {"steps": 0}):
        with pytest.raises(UsageError, match="grader health needs"):
            GraderHealthGuard(**bad)  # type: ignore[arg-type]


async def _running_job(client: Any) -> Job:
    (job,) = await JobManager(client=client, guards=[]).submit([spec()])
    with anyio.fail_after(10):
        while job.status is not JobStatus.RUNNING:
            await job.refresh()
    return job


async def test_a_failing_grader_pauses_the_job_where_it_can_and_cancels_where_not(
    tmp_path: Path,
) -> None:
    for provider, taken, status in (
        ("fake", "paused", JobStatus.PAUSED),
        ("nopause", "cancelled", JobStatus.CANCELLED),  # training on zeros: the default stops
    ):
        async with make_client(tmp_path / f"{provider}.db", provider=provider) as client:
            job = await _running_job(client)
            guard = GraderHealthGuard()
            trips_seen = [
                guard.observe(job, local_step(s, failed=1.0, example="boom")) for s in (1, 2, 3)
            ]
            assert trips_seen[:2] == [None, None] and trips_seen[2] is not None
            done = await enforce(job, trips_seen[2], fallback=guard.fallback)
            assert done.guard == "grader_health" and done.taken == taken
            assert "grader 'fail'" in done.reason and "python_runtime" in done.reason
            assert "boom" in done.reason
            assert job.status is status
            assert guard.observe(job, local_step(4, failed=1.0)) is None  # trips once


async def test_the_grader_guard_is_on_by_default_with_a_switch(tmp_path: Path) -> None:
    from rlft.cli._jobs_view import guard_options, guards_from_options

    async with make_client(tmp_path / "jobs.db") as client:
        assert [type(g) for g in JobManager(client=client).guards] == [GraderHealthGuard]
        assert JobManager(client=client, guards=[]).guards == []
    options = {"guard_action": "pause", "fallback": "alert"}
    assert [type(g) for g in guards_from_options(options, "openai")] == [GraderHealthGuard]
    assert guards_from_options({**options, "no_grader_guard": True}, "openai") == []
    import click

    @click.command()
    @guard_options
    def probe(**options: Any) -> None:
        click.echo(repr(options["no_grader_guard"]))

    from click.testing import CliRunner

    assert CliRunner().invoke(probe, []).output.strip() == "False"
    assert CliRunner().invoke(probe, ["--no-grader-guard"]).output.strip() == "True"


def test_grader_health_names_a_failing_sub_grader_over_its_multi() -> None:
    rule = GraderHealth(steps=1)
    step = StepMetrics(
        step=1,
        grader_error_rate=0.75,
        extra={
            "triage/errors/python_runtime": 0.75,
            "triage/why/errors/python_runtime": 0.75,
            "triage/label/errors/sample_parse": 0.25,
            "eval_triage/errors/python_runtime": 1.0,  # validation: not a training step's
        },
    )
    verdict = rule.observe(step)
    assert verdict is not None
    assert verdict[0].startswith("grader 'triage/why' failed on 75% of grades")
    assert "top error python_runtime (75% of grades)" in verdict[0]
