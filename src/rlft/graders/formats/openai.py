"""To OpenAI-compatible fine-tuning grader JSON (OpenAI and Azure).

The neutral spec already uses OpenAI's field names, so this is mostly a dump. What it settles:

- ``multi.graders`` is a dict keyed by the names ``calculate_output`` uses. The OpenAPI spec and
  the SDK types say one grader (or a list), but the API wants the dict:
  https://github.com/openai/openai-java/issues/647 (reference/openai_azure.md §2.7).
- Optional fields left unset are omitted, not sent as ``null``.
- Azure takes the same JSON (reference §5.5). The May-2025 Azure page's extra rules (``multi``
  only over ``string_check``/``text_similarity``, an ``invalid_grade`` field) were dropped from the
  current page, so rlft does not apply them; ``score_model.model`` may need to be a deployment
  name on Azure (the docs conflict), which is the user's value, passed through unchanged.
"""

from __future__ import annotations

from typing import Any

from rlft.graders._spec import BaseGrader, Native

__all__ = ["to_openai_json"]


def to_openai_json(grader: BaseGrader, target: str = "openai") -> dict[str, Any]:
    """The grader as the JSON for ``method.reinforcement.grader``.

    Call ``rlft.graders.compile(grader, "openai" | "azure")``, which checks support first.
    """
    if isinstance(grader, Native):
        return dict(grader.payload)
    return grader.model_dump(mode="json", exclude_none=True)
