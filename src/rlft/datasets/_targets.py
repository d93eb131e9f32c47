"""What each backend accepts in an RFT dataset, keyed by ``Capabilities.dataset_target``.

Every rule names its source; the tags resolve in ``/work/shared/reference/openai_azure.md`` (§4,
§10) and ``bedrock.md`` (§7, Sources). Rules marked UNCONFIRMED there are warnings here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["GENERIC_ROLES", "TARGETS", "TargetRules", "rules_for"]

# Every role some backend accepts; anything else is a typo or another vendor's vocabulary.
GENERIC_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# Message keys the chat format defines; others are probably typos ("contnet").
MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight"})
# Content part types the chat format defines.
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file"})

Requirement = Literal["required", "recommended", "optional"]


@dataclass(frozen=True, kw_only=True)
class TargetRules:
    """One backend's dataset rules.

    Attributes:
        name: The target name (``"openai"``).
        label: How messages name the backend (``"OpenAI RFT"``).
        roles: Roles the backend accepts; ``role_fixes`` says what to use instead of the others.
        part_types: Content part types accepted; ``part_warnings`` are accepted but doubtful.
        min_rows / max_rows: Training-set size limits (``warn_min_rows``: a soft minimum).
        max_validation_rows: Validation-set size limit.
        validation: Whether a validation set is required, recommended or optional.
        single_turn: The model answers once: an optional leading system turn, then user turns;
            assistant turns before the last user turn are few-shot examples, so user and
            assistant alternate.
        reference_answer: Rows carry a non-empty ``reference_answer`` (str or object).
        reserved_item_fields: Item field names that collide with the backend's own names.
        ignores_tools: Per-row ``tools`` are dropped by this backend.
        max_file_bytes: Rendered file size limit.
    """

    name: str
    label: str
    roles: frozenset[str]
    role_fixes: Mapping[str, str] = field(default_factory=dict)
    part_types: frozenset[str] = PART_TYPES
    part_warnings: frozenset[str] = frozenset()
    min_rows: int | None = None
    warn_min_rows: int | None = None
    max_rows: int | None = None
    max_validation_rows: int | None = None
    validation: Requirement = "optional"
    single_turn: bool = False
    reference_answer: bool = False
    reserved_item_fields: frozenset[str] = frozenset()
    ignores_tools: bool = False
    max_file_bytes: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict)


_OPENAI_ROLES = frozenset({"developer", "user", "assistant", "tool"})
_SYSTEM_FIX = {"system": 'use role "developer": RFT files accept no "system" messages'}

TARGETS: dict[str, TargetRules] = {
    "openai": TargetRules(
        name="openai",
        label="OpenAI RFT",
        roles=_OPENAI_ROLES,  # [OAI-SPEC-2025-07] FineTuneReinforcementRequestInput: no system
        role_fixes=_SYSTEM_FIX,
        part_types=frozenset({"text", "image_url"}),  # "text or image content only" [OAI-SPEC]
        max_rows=50_000,  # [OAI-RFT-GUIDE]
        max_validation_rows=1_000,  # [OAI-RFT-GUIDE]
        # The schema makes validation_file optional, but the guide says RFT needs both files.
        validation="recommended",
        sources={
            "limits": "https://developers.openai.com/api/docs/guides/reinforcement-fine-tuning"
        },
    ),
    "azure": TargetRules(
        name="azure",
        label="Azure OpenAI RFT",
        roles=_OPENAI_ROLES,  # "System messages aren't supported" [AZ-RFT-2025-05]
        role_fixes=_SYSTEM_FIX,
        part_types=frozenset({"text", "image_url"}),
        part_warnings=frozenset({"image_url"}),  # images: CONFLICT/UNCONFIRMED on Azure today
        warn_min_rows=10,  # [AZ-FT-REST] generic fine-tuning file rule (stated for SFT)
        max_rows=50_000,  # [AZ-RFT-2025-05]
        max_validation_rows=1_000,  # [AZ-RFT-2025-05]
        validation="required",  # [AZ-RFT-INC]
        max_file_bytes=512 * 1024 * 1024,  # "each file < 512 MB" [AZ-FT-REST]
        sources={
            "limits": "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/"
            "reinforcement-fine-tuning"
        },
    ),
    "bedrock": TargetRules(
        name="bedrock",
        label="Bedrock RFT",
        # System, user and assistant roles [D2]; single-turn [D7]: the model answers once, so
        # assistant turns are few-shot examples inside the prompt, alternating with user turns.
        roles=frozenset({"system", "user", "assistant"}),
        role_fixes={
            "developer": 'use role "system" for instructions on Bedrock',
            "tool": "Bedrock RFT is single-turn without tools: keep system, user and assistant "
            "(few-shot) turns",
        },
        part_types=frozenset({"text"}),  # "Text only. Multimodal inputs are not supported" [D7]
        min_rows=100,  # [D2]
        max_rows=20_000,  # "a maximum of 20K prompts" [D1]
        single_turn=True,  # [D7]
        reference_answer=True,  # [D2]
        sources={
            "limits": "https://docs.aws.amazon.com/bedrock/latest/userguide/rft-nova-models.html"
        },
    ),
    "local": TargetRules(
        name="local",
        label="the local TRL runner",
        roles=GENERIC_ROLES,
        # TRL passes dataset columns to reward functions as keyword arguments beside its own
        # (trl/trainer/grpo_trainer.py, _calculate_rewards), so these names collide.
        reserved_item_fields=frozenset(
            {
                "prompt",
                "prompts",
                "completion",
                "completions",
                "completion_ids",
                "trainer_state",
                "log_extra",
                "log_metric",
                "environments",
            }
        ),
        ignores_tools=True,  # TRL takes tools as trainer callables, not per row
    ),
}


def rules_for(target: str | None) -> TargetRules | None:
    """The rules for a target name, or ``None`` for no target (or an unknown one)."""
    return TARGETS.get(target) if target else None
