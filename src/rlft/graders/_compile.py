"""``compile(grader, target)``: the one place a grader becomes what a backend runs.

A target is a provider id, resolved through the plugin registry to the grader format and compiler
that backend declares (``ProviderSpec.graders``), or a format name: ``openai`` (OpenAI-style grader
JSON, the interchange format), ``trl`` (a reward function), ``lambda`` (a Lambda package) or
``neutral`` (the validated grader itself). What each format can express is fixed here; the support
matrix is derived from the formats and what the installed backends declare. ``compile`` refuses
exactly the cells it marks, a parametrised test checks every cell, and ``docs/graders.md``'s table
is generated from it (``support_table_markdown``). A refusal is a ``GraderNotSupportedError``
naming the grader path, the target and the alternative, raised before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlft._facts import GRADER_FORMATS, GraderFacts, import_string
from rlft.exceptions import GraderNotSupportedError, UsageError
from rlft.graders._runtime.images import IMAGE_PART_TYPES, wants_bytes
from rlft.graders._spec import (
    BaseGrader,
    Grader,
    LabelModel,
    Message,
    Multi,
    Native,
    Python,
    TextSimilarity,
)
from rlft.graders._spec import from_openai as _from_openai

if TYPE_CHECKING:
    from rlft.provider import ProviderSpec

__all__ = [
    "FORMATS",
    "SUPPORT_ROWS",
    "Cell",
    "check_support",
    "compile",
    "support_columns",
    "support_matrix",
    "support_row",
    "support_table_markdown",
]

FORMATS: tuple[str, ...] = GRADER_FORMATS
"""The grader formats the core builds; a backend declares which one it accepts."""


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
    "label_model is accepted only inside a multi grader by OpenAI-style fine-tuning APIs",
    "wrap it: Multi(name=..., graders={'label': grader}, calculate_output='label')",
)


_NATIVE_ELSEWHERE = Cell(
    "a native grader runs only on the backend it was written for",
    "write the grader with rlft's portable types, or use a Native grader per backend",
)


# Row id -> what it covers. Native rows ("native:<id>") are added for each backend that declares
# it runs native graders.
SUPPORT_ROWS: dict[str, str] = {
    "string_check": "string_check (eq, ne, like, ilike)",
    "text_similarity": "text_similarity (fuzzy_match, bleu, gleu, meteor, rouge_*)",
    "text_similarity:cosine": "text_similarity (cosine)",
    "python": "python",
    "score_model": "score_model",
    "label_model": "label_model (top level)",
    "multi": "multi",
    "multi:label_model": "label_model (inside multi)",
}

# What each format cannot express (every other cell is supported).
_REFUSED: dict[str, dict[str, Cell]] = {
    "openai": {"text_similarity:cosine": _COSINE, "label_model": _TOP_LABEL},
    "trl": {"text_similarity:cosine": _COSINE},
    "lambda": {"text_similarity:cosine": _COSINE},
    "neutral": {"text_similarity:cosine": _COSINE},
}
_FORMAT_NOTES: dict[str, dict[str, str]] = {
    "trl": {"score_model": "judge via an OpenAI-compatible endpoint"},
    "lambda": {
        "python": "in the Lambda's own process, which is the sandbox",
        "text_similarity": "rapidfuzz / nltk / rouge-score bundled in the zip",
    },
}


@dataclass(frozen=True)
class _Target:
    """A resolved compile target: a backend's declaration, or a bare format."""

    name: str
    format: str
    compiler: str | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    pass_threshold_types: frozenset[str] = frozenset()
    images: str | None = None
    """Why graders on this target never see images (``None``: they can)."""

    def cell(self, row: str) -> Cell:
        if row.startswith("native:"):
            return OK if row == f"native:{self.name}" else _NATIVE_ELSEWHERE
        return _REFUSED[self.format].get(row, OK)

    def note(self, row: str) -> str | None:
        return self.notes.get(row) or _FORMAT_NOTES.get(self.format, {}).get(row)


def _declared(spec: ProviderSpec) -> _Target:
    facts = spec.graders or GraderFacts(format="neutral")
    rules = spec.dataset
    blind = None
    if rules is not None and "image_url" not in rules.part_types:
        # The rows a backend trains on are all its graders see: no image rows, no images.
        source = rules.sources.get("images", "")
        blind = f"{rules.label} takes text-only rows" + (f" ({source})" if source else "")
    return _Target(
        spec.name,
        facts.format,
        facts.compiler,
        facts.notes,
        frozenset(facts.pass_threshold_types),
        blind,
    )


_LAMBDA_BLIND = "the Lambda format runs on Bedrock, whose RFT takes text-only rows"


def _image_paths(grader: BaseGrader, prefix: str = "") -> Iterator[str]:
    """Where ``grader`` reads images: judge input image parts, and python graders that ask
    for image bytes (``RLFT_IMAGE_BYTES = True``)."""
    if isinstance(grader, Multi):
        for key, sub in grader.graders.items():
            yield from _image_paths(sub, f"{prefix}graders.{key}.")
        return
    if isinstance(grader, Python) and wants_bytes(grader.source):
        yield f"{prefix}source"
    for index, message in enumerate(getattr(grader, "input", None) or ()):
        content = message.content if isinstance(message, Message) else None
        parts = content if isinstance(content, list) else [content]
        for number, part in enumerate(parts):
            if isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES:
                yield f"{prefix}input[{index}].content[{number}]"


def _resolve(target: str) -> _Target:
    from rlft._plugins import find_provider, known_providers

    spec = find_provider(target)
    if spec is not None:
        return _declared(spec)
    if target in FORMATS:
        return _Target(target, target, images=_LAMBDA_BLIND if target == "lambda" else None)
    raise UsageError(
        f"unknown grader target {target!r}: name a provider id ({', '.join(known_providers())}) "
        f"or a format ({', '.join(FORMATS)})"
    )


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


def _check_support(grader: BaseGrader, target: _Target, *, embedder: Any = None) -> None:
    """Raise ``GraderNotSupportedError`` for the first part of ``grader`` the target can't run."""
    for path, row in _rows(grader):
        if row == "text_similarity:cosine" and target.format == "trl" and embedder is not None:
            continue  # the reward function was given an embedder
        cell = target.cell(row)
        if cell.reason is not None:
            label = path or grader.name
            raise GraderNotSupportedError(
                path=label, target=target.name, reason=cell.reason, hint=cell.hint
            )
    if target.images is not None:
        for path in _image_paths(grader):
            raise GraderNotSupportedError(
                path=path,
                target=target.name,
                reason=f"the grader reads images, and {target.images}, so it never sees one",
                hint="train and grade images on a backend that takes them (openai, or the local "
                "runner), or grade the text answer only here",
            )


def check_support(grader: BaseGrader, target: str, *, embedder: Any = None) -> None:
    """Refuse what ``target`` (a provider id or a format) cannot run, without compiling.

    The check ``compile`` starts with, for callers that leave compiling to whoever uses the
    payload.

    Raises:
        GraderNotSupportedError: The first part of ``grader`` the target can't run.
        UsageError: An unknown target.
    """
    _check_support(grader, _resolve(target), embedder=embedder)


def compile(grader: Grader | BaseGrader | Mapping[str, Any], target: str, **options: Any) -> Any:
    """Compile a grader for a backend, or into a format.

    Args:
        grader: A grader, or OpenAI grader JSON.
        target: A provider id (``rlft providers`` lists them): the format and compiler that
            backend declares. Or a format name: ``"openai"`` (grader JSON for
            ``method.reinforcement.grader``), ``"trl"`` (a reward function for TRL's
            ``GRPOTrainer``), ``"lambda"`` (a ``LambdaPackage``) or ``"neutral"`` (the
            validated grader itself). A provider id wins over a format of the same name.
        **options: Format options. ``trl``: ``judge``, ``embedder``, ``pool``,
            ``concurrency``, ``item_column`` (see ``RewardFunction``). ``lambda``: ``judge``,
            ``judge_model``, ``concurrency``, ``python_timeout_s`` (see
            ``build_lambda_package``).

    Returns:
        What the target runs: a dict (grader JSON), a ``RewardFunction``, a ``LambdaPackage``,
        a backend's own payload, or the grader.

    Raises:
        GraderNotSupportedError: The target can't express part of the grader (path, target,
            hint), before anything is uploaded.
        GraderValidationError: ``grader`` is JSON that is not a valid grader.
        UsageError: Unknown target, or an option the target doesn't take.
    """
    if not isinstance(grader, BaseGrader):
        grader = _from_openai(grader)
    resolved = _resolve(target)
    _check_support(grader, resolved, embedder=options.get("embedder"))
    try:
        if resolved.compiler is not None:
            return import_string(resolved.compiler)(grader, **options)
        return build(
            grader,
            resolved.format,
            target=resolved.name,
            pass_threshold_types=resolved.pass_threshold_types,
            **options,
        )
    except TypeError as exc:  # an option the builder does not take
        raise UsageError(f"compile(grader, {target!r}): {exc}") from None


def build(
    grader: BaseGrader,
    format: str,
    *,
    target: str | None = None,
    pass_threshold_types: frozenset[str] = frozenset(),
    **options: Any,
) -> Any:
    """Build ``grader`` in one of the core's formats, without support checks.

    Args:
        grader: The grader.
        format: One of ``FORMATS``.
        target: The provider id it is built for, named in notices.
        pass_threshold_types: Grader types that keep ``pass_threshold`` in the OpenAI format
            (the backend's ``GraderFacts.pass_threshold_types``).
        **options: The format's options.
    """
    if format == "trl":
        from rlft.graders.formats.trl import RewardFunction

        return RewardFunction(grader, **options)
    if format == "lambda":
        from rlft.graders.formats.lambda_ import build_lambda_package

        return build_lambda_package(grader, **options)
    _no_options(format, options)
    if format == "openai":
        from rlft.graders.formats.openai import to_openai_json

        return to_openai_json(grader, target or format, pass_threshold_types)
    if format == "neutral":
        return grader
    raise UsageError(f"unknown grader format {format!r}: use one of {', '.join(FORMATS)}")


def _no_options(target: str, options: Mapping[str, Any]) -> None:
    if options:
        raise UsageError(
            f"compile(grader, {target!r}) takes no options; got {', '.join(sorted(options))}"
        )


def _builtin_specs() -> list[ProviderSpec]:
    from rlft._plugins import builtin_plugins, find_provider, known_providers

    builtins = set(builtin_plugins())
    specs = [find_provider(name) for name in known_providers()]
    return [s for s in specs if s is not None and s.plugin in builtins and s.graders is not None]


def support_columns(providers: Iterable[ProviderSpec] | None = None) -> list[str]:
    """The matrix columns: each backend that declares graders, then the formats not shadowed.

    Args:
        providers: The backends to include (default: rlft's built-ins).
    """
    return [t.name for t in _columns(providers)]


def _columns(providers: Iterable[ProviderSpec] | None) -> list[_Target]:
    specs = sorted(_builtin_specs() if providers is None else providers, key=lambda s: s.name)
    targets = [_declared(spec) for spec in specs]
    names = {t.name for t in targets}
    return targets + [_Target(f, f) for f in FORMATS if f not in names]


def _matrix_rows(providers: Iterable[ProviderSpec] | None) -> dict[str, str]:
    specs = _builtin_specs() if providers is None else list(providers)
    natives = sorted(s.name for s in specs if s.graders is not None and s.graders.native)
    return {**SUPPORT_ROWS, **{f"native:{n}": f"Native(target='{n}')" for n in natives}}


def support_matrix(
    providers: Iterable[ProviderSpec] | None = None,
) -> dict[str, dict[str, Cell]]:
    """``{row: {column: Cell}}``: what each backend and format can run.

    Args:
        providers: The backends to include (default: rlft's built-ins).
    """
    specs = None if providers is None else list(providers)
    targets = _columns(specs)
    return {row: {t.name: t.cell(row) for t in targets} for row in _matrix_rows(specs)}


def support_table_markdown(providers: Iterable[ProviderSpec] | None = None) -> str:
    """The support matrix as Markdown: the table, then why each "no" is a no and what to do.

    docs/graders.md embeds this text verbatim; a test fails when the two drift apart.

    Args:
        providers: The backends to include (default: rlft's built-ins).
    """
    specs = None if providers is None else list(providers)
    targets = _columns(specs)
    header = "| Grader | " + " | ".join(f"`{t.name}`" for t in targets) + " |"
    lines = [header, "|---|" + "---|" * len(targets)]
    reasons: list[str] = []
    for row, label in _matrix_rows(specs).items():
        cells = []
        refused: dict[Cell, list[str]] = {}
        for target in targets:
            cell = target.cell(row)
            if cell.supported:
                note = target.note(row)
                cells.append(f"yes: {note}" if note else "yes")
            else:
                cells.append("no")
                refused.setdefault(cell, []).append(target.name)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        for cell, names in refused.items():
            where = ", ".join(f"`{t}`" for t in names)
            reasons.append(f"- {label} on {where}: {cell.reason}. Instead: {cell.hint}.")
    return "\n".join([*lines, "", *reasons])
