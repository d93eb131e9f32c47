"""Azure's RFT lifecycle: the dates that decide how long a model can be fine-tuned and served.

Source: Azure's model retirement schedule (MicrosoftDocs/azure-ai-docs
``articles/foundry/openai/includes/concepts-model-retirement-schedule-content.md`` @ 00bb554,
2026-07-07; reference/upstream_facts.md "Retirement"). Plain data, light enough for
``rlft providers``.
"""

from __future__ import annotations

__all__ = ["LIFECYCLE_NOTES", "SOURCE"]

SOURCE = "https://learn.microsoft.com/azure/ai-foundry/openai/concepts/model-retirements"
LIFECYCLE_NOTES = (
    f"o4-mini RFT training continues for existing customers until no earlier than 2027-04-16 "
    f"({SOURCE})",
    "gpt-5 2025-08-07 (RFT in private preview) retires on 2027-02-06",
    "Fine-tuned o4-mini deployments retire on 2027-10-16",
    "A job auto-pauses at $5,000 of training cost; resuming continues with no further cost limit",
)
"""One line per fact, for ``rlft providers`` and the docs."""
