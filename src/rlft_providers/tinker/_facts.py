"""What the ``tinker`` backend declares about itself: dataset rules, graders, rates and the
hyperparameter mapping. Imported when plugins load: no ``tinker`` SDK, no torch."""

from __future__ import annotations

from rlft.provider import (
    DatasetRules,
    GraderFacts,
    HyperparameterFacts,
    JobStatus,
    Lifecycle,
    Rates,
)

__all__ = ["DATASET", "GRADERS", "HYPERPARAMETERS", "LIFECYCLE", "RANGES", "RATES", "STATUSES"]

# The worker records rlft's neutral words, which map to themselves.
STATUSES: dict[str, JobStatus] = {}

DATASET = DatasetRules(
    label="the Tinker backend",
    # The worker renders the prompt with the model's own chat template: every role it knows.
    roles=frozenset({"system", "developer", "user", "assistant", "tool"}),
    # The loop samples one answer per prompt and grades it: one turn, text only.
    single_turn=True,
    few_shot=True,
    part_types=frozenset({"text"}),
    ignores_tools=True,
    render="trl",  # rows of {"prompt": messages, **item}, the same as the local runner
    sources={
        "sampling": "https://tinker-docs.thinkingmachines.ai/ (SamplingClient.sample takes a "
        "token prompt; rlft renders messages with the tokenizer's chat template)",
    },
)

# rlft's own engine runs every grader on the user's machine, in the worker: python graders in
# the sandbox, judges through their OpenAI-compatible endpoint, exactly as the local runner.
GRADERS = GraderFacts(
    format="neutral",
    notes={
        "score_model": "judge via an OpenAI-compatible endpoint, called from your machine",
        "python": "sandboxed on your machine",
    },
)

RATES = Rates(
    training_per_hour={},
    source="Tinker bills per million tokens (prefill, sample and train, by model), not per "
    "hour: https://tinker-docs.thinkingmachines.ai/tinker/models/ . rlft has no per-hour rate "
    "to estimate from: pass rates= to BudgetGuard, or watch the service's billing page.",
)

LIFECYCLE = Lifecycle(
    note="Tinker is generally available (the SDK is at 0.38); rlft pins tinker>=0.38,<0.39 "
    "because the wire protocol changes between minor versions.",
    source="https://pypi.org/project/tinker/",
)

RANGES: dict[str, str] = {
    "epochs": "1-100 (or max_steps)",
    "max_steps": "1-1000000",
    "batch_size": "1-1024 prompts per step",
    "samples_per_prompt": "2-256 (group-relative advantages need at least 2)",
    "learning_rate": "0 < lr <= 0.1 (Adam)",
    "max_completion_tokens": "1-32768",
    "eval_interval": "1-1000000 steps",
    "eval_samples": "1-64 per validation prompt",
}

# provider_options (lora_rank 1-512, temperature, adam, advantage, save_every, grader_guard,
# train_mlp/attn/unembed) are checked by the same function; docs/providers/tinker.md lists them.
HYPERPARAMETERS = HyperparameterFacts(
    names={
        "epochs": "epochs",
        "max_steps": "max_steps",
        "batch_size": "batch_size (prompts per step)",
        "samples_per_prompt": "group_size (SamplingClient.sample num_samples)",
        "learning_rate": "AdamParams.learning_rate",
        "max_completion_tokens": "SamplingParams.max_tokens",
        "eval_interval": "eval_interval",
        "eval_samples": "eval_samples",
        "seed": "seed (LoRA init, sampling, data order)",
    },
    ranges=RANGES,
    check="rlft_providers.tinker._plan:plan_training",
    source="the tinker SDK 0.38 (create_lora_training_client, AdamParams, SamplingParams) and "
    "tinker-cookbook 0.6's RL loop",
)
