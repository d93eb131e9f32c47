"""The worker's ``TrainerCallback``: events out, pause/cancel requests in. Worker-only import."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from rlft.provider import StepMetrics
from rlft.workers.jobdir import Action, JobDir, seal_checkpoint, utcnow
from rlft_providers.local._metrics import SUMMARY_KEYS, merge_validation, step_metrics

if TYPE_CHECKING:
    from rlft.guards import GraderHealth
    from rlft_providers.local._rewards import ErrorTally

__all__ = ["RunnerCallback"]


class RunnerCallback(TrainerCallback):
    """Streams metrics and checkpoints to the job's event log and obeys control requests.

    Only the main process writes; every process stops together, because the main process's
    reading of the control file is broadcast when there are several. With ``health``, it stops
    training at the step where the grader-health rule breaks (every process sees the same
    gathered metrics, so all stop at that step) and keeps the reason in ``unhealthy``.
    """

    def __init__(
        self,
        job: JobDir,
        *,
        attempt: int,
        grader: str,
        health: GraderHealth | None = None,
        tally: ErrorTally | None = None,
    ) -> None:
        self.job = job
        self.attempt = attempt
        self.grader = grader
        self.health = health
        self.tally = tally
        self.unhealthy: str | None = None
        """Why the grader-health rule stopped training, once it did."""
        self.stopped: Action | None = None
        self.last: StepMetrics | None = None
        self.last_valid: float | None = None
        self.summary: dict[str, float] = {}
        self._pending: StepMetrics | None = None
        self._pending_raw: dict[str, Any] | None = None
        self._cpu_start = time.process_time()  # a step's training log awaiting its evaluation

    # --- control -----------------------------------------------------------------------------

    def _requested(self, args: TrainingArguments) -> Action | None:
        action = self.job.requested()
        if args.world_size > 1:  # all ranks must stop at the same step, or collectives hang
            from accelerate.utils import broadcast_object_list

            box: list[Any] = [action]
            broadcast_object_list(box, from_process=0)
            action = box[0]
        return action

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._cpu_start = time.process_time()
        if not state.is_world_process_zero:
            return
        if self.job.read_state().status == "cancelled":  # recorded by a cancel while we loaded
            self.job.request("cancel")  # every process stops after the first step, together
            return
        self.job.update_state(
            status="running",
            started_at=utcnow(),
            step=state.global_step,
            total_steps=state.max_steps,
            attempt=self.attempt,
        )
        resumed = f" (resumed at step {state.global_step})" if state.global_step else ""
        where = f" on {args.world_size} processes" if args.world_size > 1 else ""
        self.job.append_event(
            kind="status",
            message=f"running{resumed}: {state.max_steps} steps{where}",
            raw={
                "status": "running",
                "step": state.global_step,
                "total": state.max_steps,
                "processes": args.world_size,
            },
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.stopped is None:
            action = self._requested(args)
            if action is None:
                return
            self.stopped = action
            if action == "pause":
                control.should_save = True  # the trainer saves checkpoint-<step>, then stops
            if state.is_world_process_zero:
                self.job.append_event(
                    kind="message",
                    message=f"{action} requested: stopping after step {state.global_step}",
                )
        control.should_training_stop = True

    # --- events ------------------------------------------------------------------------------

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        main = state.is_world_process_zero
        if not logs:
            return
        if any(key in logs for key in SUMMARY_KEYS):
            if main:
                self.summary = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
                # CPU seconds of this process while training: a speed measure that other load
                # on the machine does not distort (benchmarks/local_runner.py compares it)
                self.summary["train_cpu_seconds"] = time.process_time() - self._cpu_start
            return
        if any(key.startswith("eval_") for key in logs):
            if self.tally is not None:
                self.tally.take()  # the evaluation's failures: not a training step's
            if main:
                raw, self._pending_raw = self._pending_raw, None
                base = self._pending or StepMetrics(
                    step=state.global_step, total_steps=state.max_steps
                )
                self._pending = None
                self._emit(merge_validation(base, logs), raw)
            return
        metrics = step_metrics(
            logs, step=state.global_step, total_steps=state.max_steps, grader=self.grader
        )
        top = self.tally.take() if self.tally is not None else None
        raw = {"grader_error": top[0], "grader_error_count": top[1]} if top else None
        if self.health is not None and self.unhealthy is None:
            verdict = self.health.observe(metrics, example=top[0] if top else None)
            if verdict is not None:  # keep this step's model, then stop
                self.unhealthy = verdict[0]
                control.should_save = True
                control.should_training_stop = True
        if not main:
            return
        if control.should_evaluate:  # this step's evaluation follows: send both as one event
            self._pending = metrics
            self._pending_raw = raw
        else:
            self._emit(metrics, raw)

    def _emit(self, metrics: StepMetrics, raw: dict[str, Any] | None = None) -> None:
        self.last = metrics
        if metrics.valid_reward_mean is not None:
            self.last_valid = metrics.valid_reward_mean
        message = _describe(metrics)
        if raw and metrics.grader_error_rate:
            message += f" ({str(raw['grader_error'])[:200]})"
        self.job.append_event(
            kind="metrics",
            level="warning" if metrics.grader_error_rate else "info",
            metrics=metrics,
            message=message,
            raw=raw,
        )

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        if self._pending is not None:  # no evaluation came (it failed or was skipped)
            self._emit(self._pending, self._pending_raw)
            self._pending = self._pending_raw = None
        step = state.global_step
        path = self.job.output_dir / f"checkpoint-{step}"
        seal_checkpoint(path)  # complete and on disk: only now may it be listed or resumed
        metrics = self.last if self.last is not None and self.last.step == step else None
        metrics = metrics or StepMetrics(step=step, total_steps=state.max_steps)
        if metrics.valid_reward_mean is None and self.last_valid is not None:
            # a checkpoint reports the latest validation reward, as hosted backends do
            metrics = metrics.model_copy(update={"valid_reward_mean": self.last_valid})
        self.job.append_event(
            kind="checkpoint",
            message=f"checkpoint at step {step}: {path}",
            metrics=metrics,
            raw={"step": step, "path": str(path)},
        )


def _describe(metrics: StepMetrics) -> str:
    parts = [f"step {metrics.step}/{metrics.total_steps}"]
    if metrics.train_reward_mean is not None:
        parts.append(f"reward {metrics.train_reward_mean:.3f}")
    if metrics.valid_reward_mean is not None:
        parts.append(f"valid {metrics.valid_reward_mean:.3f}")
    if metrics.grader_error_rate:
        parts.append(f"grader errors {metrics.grader_error_rate:.0%}")
    return ", ".join(parts)
