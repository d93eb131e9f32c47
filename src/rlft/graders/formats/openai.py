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
- ``pass_threshold`` is kept where the target documents it and dropped, with a logged notice,
  where it does not: Azure's RFT page shows it on ``text_similarity`` and ``score_model``
  graders; OpenAI's fine-tuning schema (spec 2.3.0, ``openai`` 3.57 types) has it on no grader,
  only on the Evals variants, although its graders guide prints it in examples. Locally the
  engine reads it as ``GradeResult.passed``.
"""

from __future__ import annotations

import logging
from typing import Any

from rlft.graders._spec import BaseGrader, Native

__all__ = ["to_openai_json"]

log = logging.getLogger("rlft.graders")


def to_openai_json(
    grader: BaseGrader, target: str = "openai", accepted: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The grader as the JSON for ``method.reinforcement.grader``.

    Call ``rlft.graders.compile(grader, <provider id>)``, which checks support first. ``accepted``
    names the grader types whose ``pass_threshold`` the target keeps (the backend declares them
    in ``GraderFacts.pass_threshold_types``); OpenAI's fine-tuning schema has it on none.
    """
    if isinstance(grader, Native):
        return grader.to_openai()
    payload = grader.model_dump(mode="json", exclude_none=True)
    _drop_pass_threshold(payload, "", target, accepted)
    for sub_key, sub in (payload.get("graders") or {}).items():
        _drop_pass_threshold(sub, f"graders.{sub_key}.", target, accepted)
    return payload


def _drop_pass_threshold(
    payload: dict[str, Any], path: str, target: str, accepted: frozenset[str]
) -> None:
    if "pass_threshold" not in payload or payload.get("type") in accepted:
        return
    value = payload.pop("pass_threshold")
    where = f"only on {', '.join(sorted(accepted))} graders" if accepted else "on no grader"
    log.warning(
        "%spass_threshold=%s dropped for %s: its fine-tuning API takes it %s; rlft still "
        "reports it locally as GradeResult.passed",
        path,
        value,
        target,
        where,
    )
