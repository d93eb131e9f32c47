"""OpenAI's fine-tuning lifecycle: the dates that decide whether a create can still work.

Source: OpenAI's deprecations page, https://developers.openai.com/api/docs/deprecations (checked
2026-12; reference/upstream_facts.md "Lifecycle"). Plain data, the one place these dates are
written: the provider's error hints and the backend's declared lifecycle (``_facts``) read them.
"""

from __future__ import annotations

from datetime import date

__all__ = ["ALTERNATIVES", "NEW_JOBS_STOP", "NEW_ORGS_CLOSED", "O4_MINI_SHUTDOWN", "SOURCE"]

SOURCE = "https://developers.openai.com/api/docs/deprecations"
NEW_JOBS_STOP = date(2027, 1, 6)
"""No new self-serve fine-tuning jobs from this day, for any organisation."""
NEW_ORGS_CLOSED = date(2026, 5, 7)
"""Organisations that had never fine-tuned lost job creation on this day."""
O4_MINI_SHUTDOWN = date(2026, 10, 23)
"""``o4-mini-2025-04-16``, the only OpenAI RFT base model, shut down on this day."""
ALTERNATIVES = (
    "provider 'azure' (o4-mini RFT continues there for existing customers until no earlier than "
    "2027-04-16), 'bedrock' (Nova and open-weight models), 'local' (TRL on your GPUs), or any "
    "other installed backend (`rlft providers`)"
)
