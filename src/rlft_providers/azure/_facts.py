"""What the ``azure`` backend declares about itself: status words, dataset rules, grader format,
rates, hyperparameter names and lifecycle. Plain data, imported when plugins load.

Sources resolve in ``/work/shared/reference/openai_azure.md`` (tags in brackets).
"""

from __future__ import annotations

from dataclasses import replace

from rlft.provider import DatasetRules, GraderFacts, JobStatus, Lifecycle, Rates
from rlft_providers.openai._facts import HYPERPARAMETERS as OPENAI_HYPERPARAMETERS
from rlft_providers.openai._facts import OPENAI_ROLES, SYSTEM_FIX

__all__ = ["DATASET", "GRADERS", "HYPERPARAMETERS", "LIFECYCLE", "RATES", "STATUSES"]

# Azure's data-plane statuses (reference §5.7; AzureOpenAI 2025-04-01-preview).
STATUSES = {
    "created": JobStatus.PENDING,
    "pending": JobStatus.PENDING,
    "validating_files": JobStatus.PENDING,
    "queued": JobStatus.PENDING,
    "notrunning": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "pausing": JobStatus.PAUSING,
    "paused": JobStatus.PAUSED,
    "resuming": JobStatus.RUNNING,  # on its way back to running; no neutral "resuming"
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}

DATASET = DatasetRules(
    label="Azure OpenAI RFT",
    roles=OPENAI_ROLES,  # "System messages aren't supported" [AZ-RFT-2025-05]
    role_fixes=SYSTEM_FIX,
    part_types=frozenset({"text", "image_url"}),
    part_warnings=frozenset({"image_url"}),  # images: CONFLICT/UNCONFIRMED on Azure today
    warn_min_rows=10,  # [AZ-FT-REST] generic fine-tuning file rule (stated for SFT)
    max_rows=50_000,  # [AZ-RFT-2025-05]
    max_validation_rows=1_000,  # [AZ-RFT-2025-05]
    validation="required",  # [AZ-RFT-INC]
    max_file_bytes=512 * 1024 * 1024,  # "each file < 512 MB" [AZ-FT-REST]
    render="jsonl",
    sources={
        "limits": "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/"
        "reinforcement-fine-tuning"
    },
)

# Azure takes OpenAI's grader JSON (reference §5.5).
GRADERS = GraderFacts(format="openai", native=True)

RATES = Rates(
    # Azure's example rate for o4-mini RFT (reference §5.9, Azure fine-tuning cost management).
    training_per_hour={"o4-mini": 100.0},
    source="https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/fine-tuning-cost-management",
)

# The same request body as OpenAI's, checked by the same wire layer.
HYPERPARAMETERS = replace(
    OPENAI_HYPERPARAMETERS, source="Azure RFT docs: the OpenAI method.reinforcement body"
)

LIFECYCLE = Lifecycle(
    note="o4-mini RFT training continues for existing customers until no earlier than "
    "2027-04-16; gpt-5 retires on 2027-02-06. Jobs auto-pause at $5,000.",
    source="https://learn.microsoft.com/en-us/azure/ai-foundry/openai/concepts/model-retirements",
)
