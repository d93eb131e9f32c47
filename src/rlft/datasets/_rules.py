"""A backend's dataset rules: the shape of the declaration, and its checks at plugin load.

Each backend declares its own ``DatasetRules`` in its ``ProviderSpec`` (``dataset=``); the core
keeps only the chat format every backend shares (roles, message keys, content part types) and the
OpenAI-style JSONL rendering, the interchange format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = [
    "GENERIC_ROLES",
    "IMAGE_FORMATS",
    "IMAGE_SOURCES",
    "MESSAGE_KEYS",
    "PART_TYPES",
    "RENDER_FORMATS",
    "DatasetRules",
    "rules_problems",
]

# Every role some backend accepts; anything else is a typo or another vendor's vocabulary.
GENERIC_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
# Message keys the chat format defines; others are probably typos ("contnet").
MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight"})
# Content part types the chat format defines.
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file"})

# Image formats rlft reads (short names as Bedrock Converse spells them), and where an image
# part's bytes may come from: an http(s) URL the service fetches, or an inline data URL.
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
IMAGE_SOURCES = frozenset({"url", "data"})

# The renderings the core owns: OpenAI-style JSONL rows as they are (the interchange format),
# and rows for TRL's GRPOTrainer (``to_trl_rows``, not a file).
RENDER_FORMATS = ("jsonl", "trl")

Requirement = Literal["required", "recommended", "optional"]

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True, kw_only=True)
class DatasetRules:
    """One backend's dataset rules, declared in its ``ProviderSpec(dataset=...)``.

    Attributes:
        label: How messages name the backend (``"Acme RFT"``).
        roles: Roles the backend accepts; ``role_fixes`` says what to use instead of the others.
        part_types: Content part types accepted; ``part_warnings`` are accepted but doubtful.
        min_rows / max_rows: Training-set size limits (``warn_min_rows``: a soft minimum).
        max_validation_rows: Validation-set size limit.
        validation: Whether a validation set is required, recommended or optional.
        single_turn: The model answers once: an optional leading system turn, then one user
            turn (or, with ``few_shot``, alternating user and assistant turns ending on a user).
        few_shot: With ``single_turn``, assistant turns before the last user turn are few-shot
            examples (AWS's RFT data guide allows them), so user and assistant alternate.
        reference_answer: Rows carry a non-empty ``reference_answer`` (str or object).
        required_item_fields: Item fields every row must carry (``item.<name>``).
        reserved_item_fields: Item field names that collide with the backend's own names.
        ignores_tools: Per-row ``tools`` are dropped by this backend.
        max_file_bytes: Rendered file size limit.
        max_images_per_row: Image parts allowed in one row's messages (``None``: no limit).
        max_image_bytes: Encoded size limit of one image.
        max_image_pixels: Width times height limit of one image.
        image_formats: Image formats accepted (``png``, ``jpeg``, ``gif``, ``webp``; GIFs and
            WebPs must be still images). Matters only when ``part_types`` has ``image_url``.
        image_sources: Where image bytes may come from: ``"url"`` (an http(s) URL the service
            fetches) and/or ``"data"`` (an inline ``data:`` URL).
        image_roles: Roles whose messages may hold images.
        render: How rows become the upload: ``"jsonl"`` (each row as is, OpenAI-style),
            ``"trl"`` (rows for TRL, no file), or ``"module:function"`` taking a ``Dataset``
            and returning the file's bytes (imported on first use).
        sources: Where the rules come from, by topic.
        name: The provider id; filled in when the spec is registered.
    """

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
    few_shot: bool = False
    reference_answer: bool = False
    required_item_fields: frozenset[str] = frozenset()
    reserved_item_fields: frozenset[str] = frozenset()
    ignores_tools: bool = False
    max_file_bytes: int | None = None
    max_images_per_row: int | None = None
    max_image_bytes: int | None = None
    max_image_pixels: int | None = None
    image_formats: frozenset[str] = IMAGE_FORMATS
    image_sources: frozenset[str] = IMAGE_SOURCES
    image_roles: frozenset[str] = GENERIC_ROLES
    render: str = "jsonl"
    sources: Mapping[str, str] = field(default_factory=dict)
    name: str = ""


def _names(value: object) -> bool:
    return isinstance(value, frozenset | set | tuple | list) and all(
        isinstance(v, str) and v for v in value
    )


def rules_problems(rules: DatasetRules) -> list[str]:
    """Every malformed field of ``rules``, each starting with the field's name."""
    problems: list[str] = []
    if not isinstance(rules.label, str) or not rules.label:
        problems.append("label: give the backend's name for messages (a non-empty string)")
    if not _names(rules.roles) or not rules.roles:
        problems.append("roles: expected a non-empty set of role names")
    else:
        problems += [
            f"roles: {role!r} is not a chat role ({', '.join(sorted(GENERIC_ROLES))})"
            for role in sorted(set(rules.roles) - GENERIC_ROLES)
        ]
    for name in ("part_types", "part_warnings"):
        value = getattr(rules, name)
        if not _names(value):
            problems.append(f"{name}: expected a set of content part types")
            continue
        problems += [
            f"{name}: {part!r} is not a content part type ({', '.join(sorted(PART_TYPES))})"
            for part in sorted(set(value) - PART_TYPES)
        ]
    for name in ("required_item_fields", "reserved_item_fields"):
        if not _names(getattr(rules, name)):
            problems.append(f"{name}: expected a set of item field names")
    for name, known in (("image_formats", IMAGE_FORMATS), ("image_sources", IMAGE_SOURCES)):
        value = getattr(rules, name)
        if not _names(value):
            problems.append(f"{name}: expected a set of names ({', '.join(sorted(known))})")
            continue
        problems += [
            f"{name}: {entry!r} is not one of {', '.join(sorted(known))}"
            for entry in sorted(set(value) - known)
        ]
    if not _names(rules.image_roles):
        problems.append("image_roles: expected a set of role names")
    else:
        problems += [
            f"image_roles: {role!r} is not a chat role ({', '.join(sorted(GENERIC_ROLES))})"
            for role in sorted(set(rules.image_roles) - GENERIC_ROLES)
        ]
    if "image_url" in rules.part_types and _names(rules.image_sources) and not rules.image_sources:
        problems.append('image_sources: empty, yet part_types accepts "image_url"')
    for name in (
        "min_rows",
        "warn_min_rows",
        "max_rows",
        "max_validation_rows",
        "max_file_bytes",
        "max_images_per_row",
        "max_image_bytes",
        "max_image_pixels",
    ):
        value = getattr(rules, name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            problems.append(f"{name}: {value!r} is not a positive whole number (or None)")
    low, high = rules.min_rows, rules.max_rows
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(f"min_rows: {low} is above max_rows ({high})")
    if rules.validation not in get_args(Requirement):
        problems.append(
            f"validation: {rules.validation!r} is not one of {', '.join(get_args(Requirement))}"
        )
    if not (rules.render in RENDER_FORMATS or _REFERENCE.match(str(rules.render))):
        problems.append(
            f'render: {rules.render!r} is not {" or ".join(RENDER_FORMATS)} or "module:function"'
        )
    elif rules.render not in RENDER_FORMATS:
        from rlft._facts import _reference

        problems += _reference("render", rules.render)
    return problems
