"""The training worker: ``python -m rlft_providers.tinker._worker <job folder>``.

It runs rlft's GRPO loop against a Tinker-protocol service: sample ``group_size`` completions
per prompt from the sampling client, grade them here with rlft's engine (the same compiled
reward function as the local runner: sandboxed python graders, judges, error counters), turn
group-relative advantages into importance-sampling datums, then ``forward_backward`` and
``optim_step``. It writes the neutral events, obeys pause/cancel between steps, and records how
it ended in ``state.json``, like the local runner's worker.

An update is never applied twice. The SDK repeats a request whose answer it lost with the same
sequence id, and the service answers a repeat without applying it again. When even the SDK's
retries fail, the step is on record as in flight in ``progress.json`` and the job stops
(``connection_lost``); a resumed worker always starts from saved state (weights and optimizer),
so an update that was in flight is discarded with the session that held it. Sampling and
evaluation change nothing on the service, so they are retried here with backoff.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any, cast

from rlft.provider import StepMetrics
from rlft.workers import JobDir, utcnow
from rlft.workers.worker import WorkerFailure, run_worker
from rlft_providers.tinker._datums import rl_datum
from rlft_providers.tinker._job import SavedState, TinkerJobFile, read_progress, write_progress
from rlft_providers.tinker._loop import batch_rows, group_advantages, mean, std
from rlft_providers.tinker._service import (
    ConnectionLost,
    ModelNotOffered,
    check_model,
    is_connection_error,
    retrying,
    service_client,
)

__all__ = ["WorkerFailure", "main", "run"]

ITEM_COLUMN = "rlft_item"
LOSS = "importance_sampling"


def _read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class Trainer:
    """One worker run of one job: connect, train step by step, save, stop."""

    def __init__(self, folder: JobDir, job: TinkerJobFile, *, attempt: int) -> None:
        self.folder = folder
        self.job = job
        self.plan = job.plan
        self.model = str(job.model)
        self.attempt = attempt
        self.train_rows = _read_rows(job.train_file)
        self.valid_rows = _read_rows(job.validation_file) if job.validation_file else []
        self.progress = read_progress(folder.root)
        self.service: Any = None
        self.training: Any = None
        self.tokenizer: Any = None
        self.reward: Any = None
        self.health: Any = None
        self.last_valid: float | None = None

    # --- events --------------------------------------------------------------------------

    def event(self, message: str, *, level: str = "info", **kw: Any) -> None:
        self.folder.append_event(message=message, level=level, **kw)

    def _retry(self, call: Any, what: str) -> Any:
        return retrying(
            call,
            what=what,
            retries=self.job.step_retries,
            backoff=self.job.retry_backoff,
            on_retry=lambda message: self.event(message, level="warning"),
        )

    def _save_progress(self, **changes: Any) -> None:
        self.progress = self.progress.model_copy(update=changes)
        write_progress(self.folder.root, self.progress)

    # --- setup ---------------------------------------------------------------------------

    def connect(self) -> int:
        """Open the session and the training client; return the step to continue after."""
        import tinker

        from rlft import graders

        self.reward = graders.compile(
            graders.from_openai(dict(self.job.grader)), "trl", item_column=ITEM_COLUMN
        )
        guard = self.job.grader_guard
        if guard is not None:
            from rlft.guards import GraderHealth

            threshold, steps = guard.get("threshold", 0.5), guard.get("steps", 3)
            self.health = GraderHealth(
                threshold=float(cast(float, threshold)), steps=int(cast(int, steps))
            )
        if self.job.response_format is not None:
            self.event(
                "response_format is not enforced by the Tinker backend: sampling is "
                "unconstrained and the grader sees the raw text",
                level="warning",
            )
        self.service = service_client(self.job.base_url)
        try:
            self._retry(
                lambda: check_model(self.model, base_url=self.job.base_url), "the model check"
            )
        except ModelNotOffered as exc:
            raise WorkerFailure(str(exc), code="model_not_offered") from exc
        saved = self.progress.saved if self.attempt > 1 else None
        try:
            if saved is not None:
                self.training = self._retry(
                    lambda: self.service.create_training_client_from_state_with_optimizer(
                        saved.state_path
                    ).result(),
                    "loading the saved state",
                )
                start = saved.step
            else:
                self.training = self._retry(
                    lambda: self.service.create_lora_training_client(
                        base_model=self.model,
                        rank=self.plan.lora_rank,
                        seed=self.plan.seed,
                        train_mlp=self.plan.train_mlp,
                        train_attn=self.plan.train_attn,
                        train_unembed=self.plan.train_unembed,
                    ).result(),
                    "creating the LoRA training client",
                )
                start = 0
        except tinker.BadRequestError as exc:
            raise WorkerFailure(
                f"the Tinker service refused the training client ({exc}); check `model` and "
                f"provider_options.lora_rank={self.plan.lora_rank}",
                code="hyperparameter",
            ) from exc
        if self.attempt > 1:
            if saved is None:
                self.event("no saved state to resume from: training starts over at step 0")
            elif self.progress.step > start:
                self.event(
                    f"resuming from the state saved at step {start}: steps {start + 1}-"
                    f"{self.progress.step} are trained again (their updates were not saved)",
                    level="warning",
                )
        self._save_progress(step=start, in_flight=None)
        self.tokenizer = self._tokenizer()
        return start

    def _tokenizer(self) -> Any:
        if self.job.tokenizer:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.job.tokenizer)
        try:
            return self.training.get_tokenizer()
        except Exception as exc:
            raise WorkerFailure(
                f"could not load the tokenizer of {self.model!r} ({type(exc).__name__}: "
                f"{exc}); set `tokenizer` under [tinker] in rlft.toml to a local tokenizer folder",
                code="tokenizer",
            ) from exc

    # --- one step ------------------------------------------------------------------------

    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return [int(t) for t in self.tokenizer.encode(text, add_special_tokens=False)]

    def _sample(
        self, sampler: Any, rows: list[dict[str, Any]], samples: int, *, seed: int
    ) -> list[tuple[list[int], list[Any]]]:
        """``(prompt tokens, sequences)`` per row, every request in flight at once.

        Each prompt gets its own seed (``seed`` + its position): one seed for all would draw
        the same random numbers for every prompt, so similar prompts would answer alike and a
        single answer would win every group at once.
        """
        import tinker

        prompts = [self._prompt_tokens(row["prompt"]) for row in rows]
        futures = []
        for index, tokens in enumerate(prompts):
            params = tinker.SamplingParams(
                max_tokens=self.plan.max_tokens,
                temperature=self.plan.temperature,
                seed=(seed * 1_000_003 + index) % 2**31,
            )
            futures.append(
                sampler.sample(tinker.ModelInput.from_ints(tokens=tokens), samples, params)
            )
        return [(p, list(f.result().sequences)) for p, f in zip(prompts, futures, strict=True)]

    def _grade(
        self, rows: list[dict[str, Any]], groups: list[tuple[list[int], list[Any]]]
    ) -> tuple[list[float], dict[str, float], Counter[str]]:
        """Rewards (one per completion, in order), the grader's counters and error reasons."""
        prompts, texts, items = [], [], []
        for row, (_, sequences) in zip(rows, groups, strict=True):
            item = json.dumps({k: v for k, v in row.items() if k != "prompt"})
            for sequence in sequences:
                prompts.append(row["prompt"])
                texts.append(self.tokenizer.decode(sequence.tokens, skip_special_tokens=True))
                items.append(item)
        logged: dict[str, float] = {}
        reasons: Counter[str] = Counter()

        def log_metric(name: str, value: float) -> None:
            logged[name] = float(value)

        def log_extra(column: str, values: list[Any]) -> None:
            reasons.update(str(v) for v in values if v)

        rewards = self.reward(
            prompts=prompts,
            completions=[t.strip() for t in texts],
            **{ITEM_COLUMN: items},
            log_metric=log_metric,
            log_extra=log_extra,
        )
        return [float(r) for r in rewards], logged, reasons

    def _metrics(self, step: int, rewards: list[float], logged: dict[str, float]) -> StepMetrics:
        name = str(self.job.grader.get("name") or "grader")
        own = f"{name}/"
        grader_rewards = {name: mean(rewards)}
        extra: dict[str, float] = {}
        fields: dict[str, Any] = {}
        for key, value in logged.items():
            if key == f"{own}failure_rate":
                fields["grader_error_rate"] = value
            elif key.startswith(f"{own}errors/"):
                extra[key] = value
                if key == f"{own}errors/sample_parse":
                    fields["parse_error_rate"] = value
            elif key.startswith(own):
                grader_rewards[key.removeprefix(own)] = value
        fields.setdefault("grader_error_rate", 0.0)
        return StepMetrics(
            step=step,
            total_steps=self.plan.total_steps,
            train_reward_mean=mean(rewards),
            train_reward_std=std(rewards),
            grader_rewards=grader_rewards,
            extra=extra,
            **fields,
        )

    def step(self, step: int) -> tuple[StepMetrics, dict[str, Any] | None]:
        """Run training step ``step`` (1-based) and commit its update."""
        started = time.monotonic()
        sampler = self._retry(
            lambda: self.training.save_weights_and_get_sampling_client().result(),
            f"step {step}'s sampler snapshot",
        )
        indices = batch_rows(
            step - 1,
            rows=len(self.train_rows),
            batch_size=self.plan.batch_size,
            seed=self.plan.seed,
        )
        rows = [self.train_rows[i] for i in indices]
        groups = self._retry(
            lambda: self._sample(
                sampler, rows, self.plan.group_size, seed=self.plan.seed * 100_003 + step
            ),
            f"step {step}'s sampling",
        )
        rewards, logged, reasons = self._grade(rows, groups)
        datums: list[Any] = []
        old_logprobs: list[list[float]] = []
        lengths: list[int] = []
        position, used = 0, 0
        for prompt, sequences in groups:
            group_rewards = rewards[position : position + len(sequences)]
            position += len(sequences)
            lengths.extend(len(s.tokens) for s in sequences)
            advantages = group_advantages(group_rewards, normalise=self.plan.advantage)
            if advantages is None:
                continue
            used += 1
            for sequence, advantage in zip(sequences, advantages, strict=True):
                if not sequence.tokens:
                    continue
                logprobs = list(sequence.logprobs or [])
                datums.append(rl_datum(prompt, list(sequence.tokens), logprobs, advantage))
                old_logprobs.append(logprobs)
        metrics = self._metrics(step, rewards, logged)
        extra = dict(metrics.extra)
        extra["groups_with_signal"] = float(used)
        sampled = [lp for seq in old_logprobs for lp in seq]
        if sampled:
            extra["entropy"] = -mean(sampled)  # the sampled tokens' mean surprise
        kl = self._update(step, datums, old_logprobs, extra)
        prompt_tokens = sum(len(p) * len(s) for p, s in groups)
        metrics = metrics.model_copy(
            update={
                "kl": kl,
                "completion_length_mean": mean([float(n) for n in lengths]),
                "step_seconds": time.monotonic() - started,
                "tokens": {"prompt": float(prompt_tokens), "completion": float(sum(lengths))},
                "extra": extra,
            }
        )
        top = reasons.most_common(1)
        raw = {"grader_error": top[0][0], "grader_error_count": top[0][1]} if top else None
        return metrics, raw

    def _update(
        self, step: int, datums: list[Any], old: list[list[float]], extra: dict[str, float]
    ) -> float | None:
        """``forward_backward`` + ``optim_step`` for ``step``, applied exactly once."""
        import tinker

        before = self.progress.optimizer_steps
        self._save_progress(in_flight=step)  # the intent: settled by reconcile() if lost
        kl: float | None = None
        try:
            if datums:
                result = self.training.forward_backward(datums, LOSS).result()
                kl = _kl(old, result)
                for key, value in (result.metrics or {}).items():
                    extra[f"train/{key}"] = float(value)
            self.training.optim_step(
                tinker.AdamParams(learning_rate=self.plan.learning_rate, **self.plan.adam)
            ).result()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self._reconcile(step, before, exc)
        self._save_progress(step=step, optimizer_steps=before + 1, in_flight=None)
        return kl

    def _reconcile(self, step: int, before: int, exc: BaseException) -> None:
        """The update's answer stayed lost through the SDK's retries (which repeat a request
        with its sequence id, so the service applies it once).

        Whether the service applied it can't be known from here, so it is not sent again: the
        job stops. Training can only continue from a saved state (weights and optimizer), where
        this update never happened.

        Raises:
            ConnectionLost: Always, naming the step, the saved state and the fix.
        """
        saved = self.progress.saved
        where = (
            f"the state saved at step {saved.step} ({saved.state_path}) is on the service"
            if saved is not None
            else "no state was saved yet"
        )
        raise ConnectionLost(
            f"lost the connection to the Tinker service during step {step}'s update "
            f"({type(exc).__name__}: {exc}); whether it was applied is unknown, so rlft does not "
            f"send it again (no update is ever applied twice); {where}. Check the service "
            f"(base_url, network, status page), then `rlft jobs resume {self.folder.job_id}` "
            "continues from the saved state"
        ) from exc

    # --- evaluation and checkpoints ------------------------------------------------------

    def evaluate(self, step: int) -> float | None:
        if not self.valid_rows:
            return None
        sampler = self._retry(
            lambda: self.training.save_weights_and_get_sampling_client().result(),
            "the evaluation's sampler snapshot",
        )
        groups = self._retry(
            lambda: self._sample(
                sampler, self.valid_rows, self.plan.eval_samples, seed=self.plan.seed + step
            ),
            f"step {step}'s evaluation",
        )
        rewards, _, _ = self._grade(self.valid_rows, groups)
        self.last_valid = mean(rewards)
        return self.last_valid

    def save(self, step: int, metrics: StepMetrics | None) -> SavedState:
        """Save the sampler weights and the full state; record a checkpoint event."""
        name = f"{self.folder.job_id}-step-{step:06d}"
        sampler_path = self._retry(
            lambda: self.training.save_weights_for_sampler(name).result().path,
            f"saving step {step}'s sampler weights",
        )
        state_path = self._retry(
            lambda: self.training.save_state(name, overwrite=True).result().path,
            f"saving step {step}'s state",
        )
        saved = SavedState(step=step, state_path=state_path, sampler_path=sampler_path)
        history = [s for s in self.progress.history if s.step != step] + [saved]
        self._save_progress(saved=saved, history=history)
        metrics = metrics or StepMetrics(step=step, total_steps=self.plan.total_steps)
        if metrics.valid_reward_mean is None and self.last_valid is not None:
            metrics = metrics.model_copy(update={"valid_reward_mean": self.last_valid})
        self.folder.append_event(
            kind="checkpoint",
            message=f"checkpoint at step {step}: {sampler_path}",
            metrics=metrics,
            raw={"step": step, "path": sampler_path, "state_path": state_path},
        )
        return saved

    # --- the loop ------------------------------------------------------------------------

    def train(self, start: int) -> tuple[str, int]:
        plan = self.plan
        self.folder.update_state(
            status="running",
            started_at=utcnow(),
            step=start,
            total_steps=plan.total_steps,
            attempt=self.attempt,
        )
        resumed = f" (resumed at step {start})" if start else ""
        self.folder.append_event(
            kind="status",
            message=f"running{resumed}: {plan.total_steps} steps on {self.model}",
            raw={"status": "running", "step": start, "total": plan.total_steps},
        )
        step = start
        while step < plan.total_steps:
            action = self.folder.requested()
            if action is not None:
                self.event(f"{action} requested: stopping after step {step}")
                if action == "cancel":
                    return "cancelled", step
                if self.progress.saved is None or self.progress.saved.step != step:
                    self.save(step, None)
                return "paused", step
            step += 1
            metrics, raw = self.step(step)
            if plan.eval_interval and (step % plan.eval_interval == 0 or step == plan.total_steps):
                valid = self.evaluate(step)
                metrics = metrics.model_copy(update={"valid_reward_mean": valid})
            self._emit(metrics, raw)
            self.folder.update_state(step=step)
            if self.health is not None:
                verdict = self.health.observe(metrics, example=raw["grader_error"] if raw else None)
                if verdict is not None:
                    self.save(step, metrics)
                    raise WorkerFailure(verdict[0], code="grader_errors", step=step)
            if step % plan.save_every == 0 or step == plan.total_steps:
                self.save(step, metrics)
        saved = self.progress.saved
        if saved is not None and saved.sampler_path:
            self.folder.update_state(fine_tuned_model=saved.sampler_path)
        return "succeeded", step

    def _emit(self, metrics: StepMetrics, raw: dict[str, Any] | None) -> None:
        parts = [f"step {metrics.step}/{metrics.total_steps}"]
        if metrics.train_reward_mean is not None:
            parts.append(f"reward {metrics.train_reward_mean:.3f}")
        if metrics.valid_reward_mean is not None:
            parts.append(f"valid {metrics.valid_reward_mean:.3f}")
        if metrics.grader_error_rate:
            parts.append(f"grader errors {metrics.grader_error_rate:.0%}")
        message = ", ".join(parts)
        if raw and metrics.grader_error_rate:
            message += f" ({str(raw['grader_error'])[:200]})"
        self.folder.append_event(
            kind="metrics",
            level="warning" if metrics.grader_error_rate else "info",
            metrics=metrics,
            message=message,
            raw=raw,
        )

    def close(self, status: str) -> None:
        """Finish the service session (``success``, ``errored`` or ``interrupted``)."""
        if self.service is not None:
            with contextlib.suppress(Exception):  # the session ends with the process anyway
                self.service.close(status).result(timeout=10)


def _kl(old: list[list[float]], result: Any) -> float | None:
    """Mean (sampler logprob - trainer logprob) over the completion tokens: the k1 estimate of
    KL(sampler || trainer), ~0 when both see the same weights."""
    outputs = getattr(result, "loss_fn_outputs", None) or []
    diffs: list[float] = []
    for logprobs, output in zip(old, outputs, strict=False):
        new = output.get("logprobs") if isinstance(output, dict) else None
        if new is None:
            return None
        values = [float(x) for x in new.tolist()][-len(logprobs) :] if logprobs else []
        diffs.extend(o - n for o, n in zip(logprobs, values, strict=False))
    return mean(diffs) if diffs else None


def run(folder: JobDir) -> tuple[str, int | None]:
    """Train the job in ``folder``; return how it ended and the last step."""
    state = folder.read_state()
    early = folder.requested()
    if early is not None:
        return ("cancelled" if early == "cancel" else "paused"), state.step
    job = folder.read_job(TinkerJobFile)
    trainer = Trainer(folder, job, attempt=state.attempt)
    status = "errored"
    try:
        start = trainer.connect()
        if folder.requested() == "cancel" or folder.read_state().status == "cancelled":
            outcome = "cancelled", start
        else:
            outcome = trainer.train(start)
        status = "success" if outcome[0] == "succeeded" else "interrupted"
        return outcome
    except ConnectionLost as exc:
        raise WorkerFailure(str(exc), code="connection_lost", step=trainer.progress.step) from exc
    finally:
        trainer.close(status)


def main(argv: list[str] | None = None) -> int:
    """Run one job folder; exit 0 when the outcome was recorded, 1 on a failure."""
    return run_worker(run, argv, provider="tinker", module="rlft_providers.tinker._worker")


if __name__ == "__main__":
    sys.exit(main())
