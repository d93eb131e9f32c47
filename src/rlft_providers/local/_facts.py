"""What the ``local`` backend declares about itself: dataset rules, grader format, rates and
hyperparameter names. Imported when plugins load: no torch, trl or transformers."""

from __future__ import annotations

from rlft.datasets import TRL_RESERVED_FIELDS
from rlft.provider import DatasetRules, GraderFacts, HyperparameterFacts, JobStatus, Rates

__all__ = ["DATASET", "GRADERS", "HYPERPARAMETERS", "RATES", "STATUSES"]

# The worker writes rlft's neutral words, which map to themselves.
STATUSES: dict[str, JobStatus] = {}

DATASET = DatasetRules(
    label="the local TRL runner",
    roles=frozenset({"system", "developer", "user", "assistant", "tool"}),
    reserved_item_fields=TRL_RESERVED_FIELDS,  # TRL passes columns beside its own arguments
    ignores_tools=True,  # TRL takes tools as trainer callables, not per row
    render="trl",  # rows for GRPOTrainer (rlft.datasets.to_trl_rows), no upload file
    # Images for vision-language models: the formats Pillow reads, inline only (the runner
    # trains offline and fetches nothing); Pillow's decompression-bomb guard bounds pixels.
    image_formats=frozenset({"png", "jpeg", "gif", "webp"}),
    image_sources=frozenset({"data"}),
)

# The worker compiles the neutral grader to a TRL reward function itself.
GRADERS = GraderFacts(
    format="neutral",
    notes={"score_model": "judge via an OpenAI-compatible endpoint"},
)

RATES = Rates(training_per_hour={"": 0.0}, source="your own machine")

# GRPOConfig fields; mapped and range-checked by _plan.plan_training (NEUTRAL_OWNED there).
HYPERPARAMETERS = HyperparameterFacts(
    names={
        "epochs": "num_train_epochs",
        "max_steps": "max_steps",
        "batch_size": "per_device_train_batch_size",
        "learning_rate": "learning_rate",
        "samples_per_prompt": "num_generations",
        "max_completion_tokens": "max_completion_length",
        "eval_interval": "eval_steps",
        "eval_samples": "num_generations_eval",
        "seed": "seed",
    },
    check="rlft_providers.local._plan:plan_training",
    source="TRL GRPOConfig (reference/trl_local.md)",
)
