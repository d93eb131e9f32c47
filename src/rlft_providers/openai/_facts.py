"""What the ``openai`` backend declares about itself: status words, dataset rules, grader format,
rates, hyperparameter names and lifecycle. Plain data, imported when plugins load.

Sources resolve in ``/work/shared/reference/openai_azure.md`` (tags in brackets).
"""

from __future__ import annotations

from rlft.provider import (
    DatasetRules,
    GraderFacts,
    HyperparameterFacts,
    JobStatus,
    Lifecycle,
    Rates,
)
from rlft_providers.openai._lifecycle import NEW_JOBS_STOP, O4_MINI_SHUTDOWN
from rlft_providers.openai._lifecycle import SOURCE as LIFECYCLE_SOURCE

__all__ = [
    "DATASET",
    "GRADERS",
    "HYPERPARAMETERS",
    "LIFECYCLE",
    "OPENAI_ROLES",
    "RATES",
    "STATUSES",
    "SYSTEM_FIX",
]

# Fine-tuning job statuses (reference §1.4). "paused" is outside the spec's enum: /pause returns it.
STATUSES = {
    "validating_files": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}

OPENAI_ROLES = frozenset({"developer", "user", "assistant", "tool"})
SYSTEM_FIX = {"system": 'use role "developer": RFT files accept no "system" messages'}

DATASET = DatasetRules(
    label="OpenAI RFT",
    roles=OPENAI_ROLES,  # [OAI-SPEC-2025-07] FineTuneReinforcementRequestInput: no system
    role_fixes=SYSTEM_FIX,
    part_types=frozenset({"text", "image_url"}),  # "text or image content only" [OAI-SPEC]
    # Image limits: OpenAI's vision fine-tuning guide ("Image data requirements"), the only
    # page that states them for fine-tuning files; images as HTTP URLs or base64 data URLs.
    max_images_per_row=10,  # "Each example can have at most 10 images"
    max_image_bytes=10 * 1024 * 1024,  # "Each image can be at most 10 MB"
    image_formats=frozenset({"png", "jpeg", "webp"}),  # "JPEG, PNG, or WEBP format"
    image_sources=frozenset({"url", "data"}),
    # Only user messages take image parts in the chat schema (system/developer/tool: text),
    # and "You cannot include images as output from messages with the assistant role".
    image_roles=frozenset({"user"}),
    max_rows=50_000,  # [OAI-RFT-GUIDE]
    max_validation_rows=1_000,  # [OAI-RFT-GUIDE]
    # The schema makes validation_file optional, but the guide says RFT needs both files.
    validation="recommended",
    render="jsonl",  # rows as they are: OpenAI's format is the interchange format
    sources={
        "limits": "https://developers.openai.com/api/docs/guides/reinforcement-fine-tuning",
        "images": "https://developers.openai.com/api/docs/guides/vision-fine-tuning",
    },
)

# OpenAI's grader JSON is the interchange format, built in the core.
GRADERS = GraderFacts(format="openai", native=True)

RATES = Rates(
    # $100/hour of core training loop, prorated per second (reference §1.8).
    training_per_hour={"o4-mini": 100.0},
    # Grader-model tokens are billed "at standard rates": no price is in the reference.
    source="https://help.openai.com/en/articles/11323177-billing-guide-for-the-reinforcement-fine-tuning-api",
)

# method.reinforcement.hyperparameters [OAI-SPEC] FineTuneReinforcementHyperparameters. The
# ranges are checked by the shared wire layer (rlft.openai_compat.wire_hyperparameters).
HYPERPARAMETERS = HyperparameterFacts(
    names={
        "epochs": "n_epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
        "compute_multiplier": "compute_multiplier",
        "eval_interval": "eval_interval",
        "eval_samples": "eval_samples",
        "reasoning_effort": "reasoning_effort",
    },
    ranges={
        "epochs": '"auto" or 1 to 50',
        "batch_size": '"auto" or 1 to 256',
        "learning_rate_multiplier": '"auto" or > 0',
        "compute_multiplier": '"auto" or (0.00001, 10]',
        "eval_interval": '"auto" or >= 1',
        "eval_samples": '"auto" or >= 1',
        "reasoning_effort": "default, low, medium or high",
    },
    check="rlft.openai_compat:wire_hyperparameters",
    source="openai/openai-openapi FineTuneReinforcementHyperparameters (reference §1.3)",
)

LIFECYCLE = Lifecycle(
    note=f"New self-serve fine-tuning jobs stop on {NEW_JOBS_STOP.isoformat()}; o4-mini, the RFT "
    f"base model, shut down on {O4_MINI_SHUTDOWN.isoformat()}.",
    source=LIFECYCLE_SOURCE,
)
