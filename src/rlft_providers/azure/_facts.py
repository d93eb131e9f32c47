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
    # Images: accepted with a warning. The May-2025 RFT page said "Images / multimodal data
    # aren't supported" [AZ-RFT-2025-05]; the current one (MicrosoftDocs/azure-ai-docs
    # articles/foundry/openai/includes/how-to-reinforcement-fine-tuning-content.md @ 421dfa9,
    # ms.date 2026-03-19) dropped that line and says nothing about images either way.
    part_warnings=frozenset({"image_url"}),
    # Image limits: Azure's vision fine-tuning page (learn.microsoft.com/azure/foundry/openai/
    # how-to/fine-tuning-vision), the only Azure page that states them; URLs or data URIs.
    max_images_per_row=64,  # "Max images per example | 64"
    max_image_bytes=10 * 1024 * 1024,  # "Max image file size | 10 MB"
    image_formats=frozenset({"png", "jpeg", "webp"}),  # "JPEG, PNG, WEBP"
    image_sources=frozenset({"url", "data"}),
    # Only user messages take image parts in the chat schema (system/developer/tool: text),
    # and "You cannot include images as output from messages with the assistant role".
    image_roles=frozenset({"user"}),
    warn_min_rows=10,  # [AZ-FT-REST] generic fine-tuning file rule (stated for SFT)
    max_rows=50_000,  # [AZ-RFT-2025-05]
    max_validation_rows=1_000,  # [AZ-RFT-2025-05]
    validation="required",  # [AZ-RFT-INC]
    max_file_bytes=512 * 1024 * 1024,  # "each file < 512 MB" [AZ-FT-REST]
    render="jsonl",
    sources={
        "limits": "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/"
        "reinforcement-fine-tuning",
        "images": "the current RFT page is silent on images; the May-2025 one said they "
        "aren't supported; limits from https://learn.microsoft.com/azure/foundry/openai/"
        "how-to/fine-tuning-vision",
    },
)

# Azure takes OpenAI's grader JSON (reference §5.5).
GRADERS = GraderFacts(
    format="openai",
    native=True,
    # https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reinforcement-fine-tuning
    pass_threshold_types=frozenset({"text_similarity", "score_model"}),
)

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
