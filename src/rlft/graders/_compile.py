"""``compile(grader, target)``: the one place a grader becomes what a backend runs.

The support matrix below is the single source of truth for what each target can express:
``compile`` refuses exactly the cells it marks, a parametrised test checks every cell, and
``docs/graders.md``'s table is generated from it (``support_table_markdown``). A refusal is a
``GraderNotSupportedError`` naming the grader path, the target and the alternative, raised
before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rlft.exceptions import GraderNotSupportedError, UsageError
from rlft.graders._spec import BaseGrader, Grader, LabelModel, Multi, Native, TextSimilarity
from rlft.graders._spec import from_openai as _from_openai

__all__ = [
    "SUPPORT",
    "SUPPORT_ROWS",
    "TARGETS",
    "Cell",
    "compile",
    "support_row",
    "support_table_markdown",
]

Target = Literal["local", "trl", "openai", "azure", "bedrock"]
TARGETS: tuple[Target, ...] = ("local", "trl", "openai", "azure", "bedrock")


@dataclass(frozen=True)
class Cell:
    """One matrix cell: ``reason`` is ``None`` when supported, else why not and what to do."""

    reason: str | None = None
    hint: str = ""

    @property
    def supported(self) -> bool:
        return self.reason is None


OK = Cell()
_COSINE = Cell(
    "cosine similarity needs an embedding model, which this target does not have "
    "(OpenAI offers cosine only for Evals, not fine-tuning)",
    "use rouge_l, bleu or fuzzy_match; or grade locally with grade(..., embedder=...) / "
    "compile(grader, 'trl', embedder=...)",
)
_TOP_LABEL = Cell(
    "label_model is accepted only inside a multi grader by OpenAI/Azure fine-tuning",
    "wrap it: Multi(name=..., graders={'label': grader}, calculate_output='label')",
)


_NATIVE_ELSEWHERE = Cell(
    "a native grader runs only on the backend it was written for",
    "write the grader with rlft's portable types, or use a Native grader per backend",
)


# row id -> (what it covers, {target: Cell})
SUPPORT_ROWS: dict[str, str] = {
    "string_check": "string_check (eq, ne, like, ilike)",
    "text_similarity": "text_similarity (fuzzy_match, bleu, gleu, meteor, rouge_*)",
    "text_similarity:cosine": "text_similarity (cosine)",
    "python": "python",
    "score_model": "score_model",
    "label_model": "label_model (top level)",
    "multi": "multi",
    "multi:label_model": "label_model (inside multi)",
    "native:openai": "Native(target='openai')",
    "native:azure": "Native(target='azure')",
    "native:bedrock": "Native(target='bedrock')",
}

SUPPORT: dict[str, dict[str, Cell]] = {
    "string_check": dict.fromkeys(TARGETS, OK),
    "text_similarity": dict.fromkeys(TARGETS, OK),
    "text_similarity:cosine": dict.fromkeys(TARGETS, _COSINE),
    "python": dict.fromkeys(TARGETS, OK),
    "score_model": dict.fromkeys(TARGETS, OK),
    "label_model": {**dict.fromkeys(TARGETS, OK), "openai": _TOP_LABEL, "azure": _TOP_LABEL},
    "multi": dict.fromkeys(TARGETS, OK),
    "multi:label_model": dict.fromkeys(TARGETS, OK),
    **{
        f"native:{own}": {target: OK if target == own else _NATIVE_ELSEWHERE for target in TARGETS}
        for own in ("openai", "azure", "bedrock")
    },
}

_NOTES: dict[str, dict[str, str]] = {
    "python": {"bedrock": "in the Lambda's own process, which is the sandbox"},
    "score_model": {
        "bedrock": "judge via Bedrock Converse or an OpenAI-compatible endpoint",
        "trl": "judge via an OpenAI-compatible endpoint",
        "local": "judge via an OpenAI-compatible endpoint",
    },
    "text_similarity": {"bedrock": "needs rapidfuzz / nltk / rouge-score in a layer"},
}


def support_row(grader: BaseGrader, *, inside_multi: bool = False) -> str:
    """The matrix row a grader (not its sub-graders) falls in."""
    if isinstance(grader, TextSimilarity) and grader.evaluation_metric == "cosine":
        return "text_similarity:cosine"
    if isinstance(grader, LabelModel) and inside_multi:
        return "multi:label_model"
    if isinstance(grader, Native):
        return f"native:{grader.target}"
    return grader.type


def _rows(grader: BaseGrader) -> Iterator[tuple[str, str]]:
    """``(grader path, row)`` for the grader and each sub-grader."""
    yield "", support_row(grader)
    if isinstance(grader, Multi):
        for key, sub in grader.graders.items():
            yield f"graders.{key}", support_row(sub, inside_multi=True)


def check_support(grader: BaseGrader, target: str, *, embedder: Any = None) -> None:
    """Raise ``GraderNotSupportedError`` for the first part of ``grader`` the target can't run."""
    for path, row in _rows(grader):
        if row == "text_similarity:cosine" and target == "trl" and embedder is not None:
            continue  # the reward function was given an embedder
        cell = SUPPORT[row][target]
        if cell.reason is not None:
            label = path or grader.name
            raise GraderNotSupportedError(
                path=label, target=target, reason=cell.reason, hint=cell.hint
            )


def compile(grader: Grader | BaseGrader | Mapping[str, Any], target: str, **options: Any) -> Any:
    """Compile a grader for a backend.

    Args:
        grader: A grader, or OpenAI grader JSON.
        target: ``"openai"`` or ``"azure"`` (grader JSON for ``method.reinforcement.grader``),
            ``"trl"`` (a reward function for TRL's ``GRPOTrainer``), ``"bedrock"`` (a
            ``LambdaPackage``), or ``"local"`` (the validated grader itself).
        **options: Target options. ``trl``: ``judge``, ``embedder``, ``pool``,
            ``concurrency``, ``item_column`` (see ``RewardFunction``). ``bedrock``: ``judge``
            (``"bedrock"`` or ``"openai"``), ``judge_model``, ``concurrency``,
            ``python_timeout_s`` (see ``build_lambda_package``).

    Returns:
        A dict (openai, azure), a ``RewardFunction`` (trl), a ``LambdaPackage`` or, for a
        ``Native`` bedrock grader, its payload ``{"lambda_arn": ...}`` (bedrock), or the grader
        (local).

    Raises:
        GraderNotSupportedError: The target can't express part of the grader (path, target,
            hint), before anything is uploaded.
        GraderValidationError: ``grader`` is JSON that is not a valid grader.
        UsageError: Unknown target, or an option the target doesn't take.
    """
    if not isinstance(grader, BaseGrader):
        grader = _from_openai(grader)
    if target not in TARGETS:
        raise UsageError(f"unknown grader target {target!r}: use one of {', '.join(TARGETS)}")
    check_support(grader, target, embedder=options.get("embedder"))
    if target in ("openai", "azure"):
        _no_options(target, options)
        from rlft.graders.formats.openai import to_openai_json

        return to_openai_json(grader, target)
    if target == "trl":
        from rlft.graders.formats.trl import RewardFunction

        try:
            return RewardFunction(grader, **options)
        except TypeError as exc:
            raise UsageError(f"compile(grader, 'trl'): {exc}") from None
    if target == "bedrock":
        if isinstance(grader, Native):
            _no_options(target, options)
            return dict(grader.payload)
        from rlft.graders.formats.lambda_ import build_lambda_package

        try:
            return build_lambda_package(grader, **options)
        except TypeError as exc:
            raise UsageError(f"compile(grader, 'bedrock'): {exc}") from None
    _no_options(target, options)
    return grader


def _no_options(target: str, options: Mapping[str, Any]) -> None:
    if options:
        raise UsageError(
            f"compile(grader, {target!r}) takes no options; got {', '.join(sorted(options))}"
        )


def support_table_markdown() -> str:
    """The support matrix as Markdown: the table, then why each "no" is a no and what to do.

    docs/graders.md embeds this text verbatim; a test fails when the two drift apart.
    """
    header = "| Grader | " + " | ".join(f"`{t}`" for t in TARGETS) + " |"
    lines = [header, "|---|" + "---|" * len(TARGETS)]
    reasons: list[str] = []
    for row, label in SUPPORT_ROWS.items():
        cells = []
        refused: dict[Cell, list[str]] = {}
        for target in TARGETS:
            cell = SUPPORT[row][target]
            if cell.supported:
                note = _NOTES.get(row, {}).get(target)
                cells.append(f"yes: {note}" if note else "yes")
            else:
                cells.append("no")
                refused.setdefault(cell, []).append(target)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        for cell, targets in refused.items():
            where = ", ".join(f"`{t}`" for t in targets)
            reasons.append(f"- {label} on {where}: {cell.reason}. Instead: {cell.hint}.")
    return "\n".join([*lines, "", *reasons])
