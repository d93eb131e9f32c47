"""The neutral grader spec: frozen pydantic models with OpenAI's grader field names.

Every template, formula and Python source is checked when a grader is built, so a bad grader is
a ``GraderValidationError`` naming the field (``graders.label.reference``) before any upload.
Grading and compiling live in ``_engine.py`` and ``formats/``; the methods here delegate to them.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rlft.exceptions import (
    GraderNotSupportedError,
    GraderValidationError,
    RLFTError,
    UsageError,
)
from rlft.graders._runtime.formula import FormulaSyntaxError, parse_formula
from rlft.graders._runtime.template import Template, TemplateSyntaxError, parse_template

if TYPE_CHECKING:
    from rlft.graders._result import GradeResult
    from rlft.graders._runtime.judge import Embedder, Judge

__all__ = [
    "BaseGrader",
    "Grader",
    "LabelModel",
    "Message",
    "Multi",
    "Native",
    "Python",
    "SamplingParams",
    "ScoreModel",
    "StringCheck",
    "SubGrader",
    "TextSimilarity",
    "from_openai",
    "grader_error_from_validation",
    "load",
]

MAX_PYTHON_SOURCE_BYTES = 256 * 1024  # OpenAI: "code < 256 kB" (reference/openai_azure.md §2.4)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

StringOperation = Literal["eq", "ne", "like", "ilike"]
SimilarityMetric = Literal[
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "cosine",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]
# A provider id: which backends run native graders is each backend's own fact
# (``GraderFacts.native``), checked when the grader is compiled, never a list in the core.
NativeTarget = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]


_NESTED: ContextVar[bool] = ContextVar("rlft_grader_nested", default=False)


def _template(value: str) -> str:
    try:
        parse_template(value)
    except TemplateSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


class BaseGrader(BaseModel):
    """What every grader has: a ``type`` tag, a ``name``, and grading/saving/compiling methods.

    Constructors take keywords only and raise ``GraderValidationError`` naming the bad field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    name: str
    """Required on every grader by OpenAI's fine-tuning schema; shown in per-grader metrics."""

    _label: ClassVar[str] = "grader"

    def __init__(self, /, **data: Any) -> None:
        # pydantic calls this __init__ for nested graders too (a multi's sub-graders); only the
        # outermost call converts, so the error keeps its full path (graders.label.input).
        token = _NESTED.set(True)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if token.old_value is True:
                raise
            raise grader_error_from_validation(exc) from None
        finally:
            _NESTED.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _derive_name(cls, data: Any) -> Any:
        # OpenAI's guide prints some graders without a name (its python grader); the schema
        # requires one, so derive it: the grader's type (a multi names sub-graders by key).
        if isinstance(data, Mapping) and "name" not in data:
            kind = data.get("type") or cls.model_fields["type"].default
            if isinstance(kind, str):
                return {**data, "name": kind}
        return data

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name is empty: give the grader a short name like 'accuracy'")
        return value

    # -- templates -----------------------------------------------------------------------------

    def templates(self) -> Iterator[tuple[str, Template]]:
        """Every template field as ``(grader_path, parsed template)``, in field order."""
        return iter(())

    # -- grading -------------------------------------------------------------------------------

    async def grade(
        self,
        sample: str | Mapping[str, Any],
        item: Mapping[str, Any] | None = None,
        *,
        judge: Judge | None = None,
        embedder: Embedder | None = None,
        pool: Any = None,
    ) -> GradeResult:
        """Grade one sample against one dataset item, on the local engine. Never raises.

        Args:
            sample: The model's answer: its text, or a dict with ``output_text`` /
                ``output_json`` / ``output_tools`` / ``choices``, or a chat message.
            item: The dataset row's fields (``{{ item.* }}``), or ``None`` for none.
            judge: The judge model graders call (default: an OpenAI-compatible endpoint from
                ``RLFT_JUDGE_*`` / ``OPENAI_*`` environment variables).
            embedder: Embeds text for ``cosine`` similarity; required for that metric.
            pool: The Python sandbox pool, a ``SandboxPool`` (default: the process-wide pool).

        Returns:
            A ``GradeResult``; failures score 0.0 with ``errors`` and ``reason`` set.
        """
        from rlft.graders._grading import grade

        return await grade(self, sample, item, judge=judge, embedder=embedder, pool=pool)

    # -- files and OpenAI JSON -----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the grader as JSON (``.json``) or YAML (``.yaml``/``.yml``), chosen by suffix.

        Returns:
            The path written.

        Raises:
            UsageError: The suffix is neither.
        """
        target = Path(path)
        data = self.to_dict()
        suffix = target.suffix.lower()
        if suffix == ".json":
            target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        elif suffix in (".yaml", ".yml"):
            import yaml

            target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        else:
            raise UsageError(f"{target}: save graders as .json, .yaml or .yml, not {suffix!r}")
        return target

    def to_dict(self) -> dict[str, Any]:
        """The grader as plain JSON data (what ``save`` writes and ``load`` reads)."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_openai(cls, data: Mapping[str, Any]) -> Grader:
        """Build a grader from OpenAI grader JSON, dispatching on its ``type``.

        Called on a subclass (``StringCheck.from_openai``), the JSON must be of that type.

        Raises:
            GraderValidationError: The JSON is not a valid grader (the message names the field).
        """
        grader = from_openai(data)
        if cls is not BaseGrader and not isinstance(grader, cls):
            raise GraderValidationError(
                f"expected a {cls.__name__} grader, got type {grader.type!r}", path="type"
            )
        return grader

    def to_openai(self) -> dict[str, Any]:
        """The grader as OpenAI grader JSON, e.g. to paste into a ``multi``.

        Unlike ``compile(grader, "openai")`` this does not check what fine-tuning accepts at the
        top level (a ``label_model`` dumps fine here), so use ``compile`` before uploading.
        """
        return self.to_dict()


def _message_templates(prefix: str, messages: list[Message]) -> Iterator[tuple[str, Template]]:
    for index, message in enumerate(messages):
        base = f"{prefix}[{index}].content"
        content = message.content
        if isinstance(content, str):
            yield base, parse_template(content)
            continue
        parts = (
            [(base, content)]
            if isinstance(content, dict)
            else [(f"{base}[{part_index}]", part) for part_index, part in enumerate(content)]
        )
        for where, part in parts:
            if isinstance(part, str):
                yield where, parse_template(part)
                continue
            for key, value in _part_strings(part):
                yield f"{where}.{key}", parse_template(value)


class StringCheck(BaseGrader):
    """Compare two rendered templates: ``eq``, ``ne``, ``like`` (contains) or ``ilike``.

    Scores 1.0 when the check holds, else 0.0. ``like``/``ilike`` are plain substring tests
    (no SQL ``%`` wildcards), case-sensitive and case-insensitive respectively.
    """

    type: Literal["string_check"] = "string_check"
    input: str
    """Template for the text to check, e.g. ``"{{ sample.output_text }}"``."""
    reference: str
    """Template for the expected text, e.g. ``"{{ item.answer }}"``."""
    operation: StringOperation

    @field_validator("input", "reference")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return _template(value)

    @field_validator("operation", mode="before")
    @classmethod
    def _friendly_operation(cls, value: Any) -> Any:
        if value == "neq":
            raise ValueError("operation 'neq' is spelt 'ne' in the grader API")
        if value not in ("eq", "ne", "like", "ilike"):
            raise ValueError(f"operation {value!r} is not one of 'eq', 'ne', 'like', 'ilike'")
        return value

    def templates(self) -> Iterator[tuple[str, Template]]:
        yield "input", parse_template(self.input)
        yield "reference", parse_template(self.reference)


class TextSimilarity(BaseGrader):
    """Score the similarity of two rendered templates with a text metric, in [0, 1].

    Metrics: ``fuzzy_match`` (rapidfuzz), ``bleu``/``gleu``/``meteor`` (nltk), ``rouge_1`` to
    ``rouge_5`` and ``rouge_l`` (rouge-score F-measure), ``cosine`` (needs an embedder; not
    available for hosted fine-tuning).
    """

    type: Literal["text_similarity"] = "text_similarity"
    input: str
    reference: str
    evaluation_metric: SimilarityMetric
    pass_threshold: float | None = None
    """Score at or above which a sample passes (``GradeResult.passed``); see ``_PASS``."""

    @field_validator("input", "reference")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return _template(value)

    @field_validator("evaluation_metric", mode="before")
    @classmethod
    def _friendly_metric(cls, value: Any) -> Any:
        allowed = get_args(SimilarityMetric)
        if value not in allowed:
            hint = ""
            if isinstance(value, str) and value.replace("-", "_").lower() in allowed:
                hint = f" (did you mean {value.replace('-', '_').lower()!r}?)"
            raise ValueError(
                f"evaluation_metric {value!r} is not one of {', '.join(allowed)}{hint}"
            )
        return value

    def templates(self) -> Iterator[tuple[str, Template]]:
        yield "input", parse_template(self.input)
        yield "reference", parse_template(self.reference)


class Python(BaseGrader):
    """Run ``grade(sample, item) -> float`` in rlft's sandboxed worker pool.

    ``sample`` is a dict with ``output_text``, ``output_json``, ``output_tools`` and ``choices``;
    ``item`` is the dataset row. Exceptions, non-numeric or non-finite returns, timeouts and
    crashes score 0.0 with the reason. Build it from text or with ``Python.from_function``.
    """

    type: Literal["python"] = "python"
    source: str
    """Python source defining ``grade(sample, item)``; at most 256 kB."""
    image_tag: str | None = None
    """OpenAI's sandbox image (e.g. ``"2025-05-08"``); passed through, unused locally."""
    pass_threshold: float | None = None
    """Score at or above which a sample passes (``GradeResult.passed``)."""

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        try:
            check_python_source(value)
        except GraderValidationError as exc:
            raise ValueError(str(exc).removeprefix("source: ")) from None
        return value

    @classmethod
    def from_function(
        cls, fn: Callable[[Any, Any], Any], *, name: str | None = None, image_tag: str | None = None
    ) -> Python:
        """Build a python grader from a function's source.

        The function must be self-contained (imports inside its body, no closures), because
        only its source travels to the sandbox, to OpenAI and into the Lambda package.

        Args:
            fn: A function of ``(sample, item)``; if it isn't called ``grade``, an alias is added.
            name: The grader name; defaults to the function's name.
            image_tag: Passed through to OpenAI.

        Raises:
            GraderValidationError: The source can't be read, it is a lambda, it closes over
                outer variables, or it does not take two arguments.
        """
        fn_name = getattr(fn, "__name__", "")
        code = getattr(fn, "__code__", None)
        if code is None or fn_name == "<lambda>":
            raise GraderValidationError(
                "Python.from_function needs a plain `def` function, not a lambda or callable "
                "object",
                path="source",
            )
        if code.co_freevars:
            raise GraderValidationError(
                f"{fn_name}() closes over {', '.join(code.co_freevars)}: only the function's "
                "source is shipped, so move those values inside the function",
                path="source",
            )
        if code.co_argcount != 2:
            raise GraderValidationError(
                f"{fn_name}() takes {code.co_argcount} arguments; a grader takes (sample, item)",
                path="source",
            )
        try:
            raw = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as exc:
            raise GraderValidationError(
                f"cannot read the source of {fn_name}(): {exc}; pass Python(source=...) instead",
                path="source",
            ) from None
        tree = ast.parse(raw)
        func = tree.body[0]
        if isinstance(func, ast.FunctionDef) and func.decorator_list:
            func.decorator_list = []  # decorators run in the caller's process, not the sandbox
            raw = ast.unparse(tree) + "\n"
        if fn_name != "grade":
            raw = raw.rstrip("\n") + f"\n\n\ngrade = {fn_name}\n"
        return cls(name=name or fn_name, source=raw, image_tag=image_tag)


def check_python_source(source: str) -> None:
    """Build-time check of python grader source, through the sandbox's ``check_source``.

    Raises:
        GraderValidationError: Syntax error, no ``grade(sample, item)``, or too large.
    """
    try:
        from rlft.graders._sandbox.pool import check_source
    except ImportError:  # the sandbox module has not landed: same rules, checked here
        _check_source_fallback(source)
    else:
        check_source(source)


def _check_source_fallback(source: str) -> None:
    size = len(source.encode())
    if size > MAX_PYTHON_SOURCE_BYTES:
        raise GraderValidationError(
            f"python source is {size} bytes; the limit is {MAX_PYTHON_SOURCE_BYTES} (256 kB)",
            path="source",
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise GraderValidationError(
            f"python source has a syntax error at line {exc.lineno}: {exc.msg}", path="source"
        ) from None
    defined = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if "grade" not in defined and "grade" not in assigned:
        raise GraderValidationError(
            "python source defines no top-level `def grade(sample, item) -> float`", path="source"
        )


ContentPart = dict[str, Any]
Content = Union[str, ContentPart, list[Union[str, ContentPart]]]  # noqa: UP007
"""A message's content in every form OpenAI's types allow: a string, one content part
(``{"type": "input_text", "text": ...}``, ``output_text``, ``input_image``, ``input_audio``), or
a list mixing strings and parts."""


def _check_part(part: Any, where: str) -> None:
    if isinstance(part, str):
        try:
            parse_template(part)
        except TemplateSyntaxError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return
    if "type" not in part:
        raise ValueError(f"{where} has no 'type' (input_text, output_text, input_image, ...)")
    for key, value in _part_strings(part):
        try:
            parse_template(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"{where}.{key}: {exc}") from None


def _part_strings(part: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The template strings of one content part: text, an image URL, audio data."""
    for key in ("text", "image_url", "data"):
        if isinstance(part.get(key), str):
            yield key, part[key]
    image = part.get("image_url")  # the chat shape: {"url": ...}
    if isinstance(image, Mapping) and isinstance(image.get("url"), str):
        yield "image_url.url", image["url"]
    audio = part.get("input_audio")
    if isinstance(audio, Mapping) and isinstance(audio.get("data"), str):
        yield "input_audio.data", audio["data"]


class Message(BaseModel):
    """One judge prompt message. ``content`` is a template string, one content part, or a list
    of strings and parts, as printed by OpenAI's types; every string is a template."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    type: Literal["message"] | None = None

    @field_validator("content")
    @classmethod
    def _check_content(cls, value: Content) -> Content:
        if isinstance(value, str):
            return _template(value)
        if isinstance(value, dict):
            _check_part(value, "content")
            return value
        for index, part in enumerate(value):
            _check_part(part, f"content[{index}]")
        return value


class SamplingParams(BaseModel):
    """The judge's sampling parameters (OpenAI spelling: ``max_completions_tokens``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    max_completions_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _friendly_typo(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "max_completion_tokens" in data:
            raise ValueError(
                "sampling_params.max_completion_tokens is spelt max_completions_tokens in the "
                "grader API"
            )
        return data


class _ModelGrader(BaseGrader):
    model: str
    """The judge model id (or, on Azure, possibly a deployment name)."""
    input: list[Message] = Field(min_length=1)
    """The judge prompt; message contents are templates."""

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model is empty: name the judge model")
        return value

    def templates(self) -> Iterator[tuple[str, Template]]:
        yield from _message_templates("input", self.input)


class ScoreModel(_ModelGrader):
    """Ask a judge model for a numeric score; the score is clamped to ``range``.

    Unparsable or non-numeric output scores 0.0 with error ``model_parse``.
    """

    type: Literal["score_model"] = "score_model"
    range: tuple[float, float] | None = None
    """``[min, max]``; OpenAI's default is ``[0, 1]``."""
    sampling_params: SamplingParams | None = None
    pass_threshold: float | None = None
    """Score at or above which a sample passes (``GradeResult.passed``)."""

    @field_validator("range")
    @classmethod
    def _check_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"range {list(value)} must be [min, max] with min < max")
        return value

    @property
    def effective_range(self) -> tuple[float, float]:
        """``range``, or OpenAI's default ``(0.0, 1.0)``."""
        return self.range if self.range is not None else (0.0, 1.0)


class LabelModel(_ModelGrader):
    """Ask a judge model to pick one of ``labels``; scores 1.0 if it is in ``passing_labels``.

    OpenAI fine-tuning accepts it only inside ``multi``.
    """

    type: Literal["label_model"] = "label_model"
    labels: list[str] = Field(min_length=1)
    passing_labels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_labels(self) -> Self:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels {self.labels} contain duplicates")
        unknown = [label for label in self.passing_labels if label not in self.labels]
        if unknown:
            raise ValueError(f"passing_labels {unknown} are not in labels {self.labels}")
        return self


SubGrader = Annotated[
    Union[StringCheck, TextSimilarity, Python, ScoreModel, LabelModel],  # noqa: UP007
    Field(discriminator="type"),
]
"""A grader allowed inside ``multi`` (no nested ``multi``)."""


class Multi(BaseGrader):
    """Combine named sub-graders with a formula, e.g. ``"0.8 * label + 0.2 * why"``.

    ``graders`` is a dict; its keys are the formula's variables. ``calculate_output`` is parsed by
    a safe expression parser when the grader is built (see ``_formula.py``). No nested ``multi``.
    """

    type: Literal["multi"] = "multi"
    graders: dict[str, SubGrader] = Field(min_length=1)
    calculate_output: str
    pass_threshold: float | None = None
    """Score at or above which a sample passes (``GradeResult.passed``)."""

    @field_validator("graders", mode="before")
    @classmethod
    def _shape_graders(cls, value: Any) -> Any:
        # OpenAI's own spec types `graders` as one grader or a list; the wire wants a dict keyed
        # by the formula's names (https://github.com/openai/openai-java/issues/647). Accept the
        # list form (keyed by each grader's name) so pasted JSON loads.
        if isinstance(value, list):
            keyed: dict[str, Any] = {}
            for index, sub in enumerate(value):
                key = _get(sub, "name")
                if not isinstance(key, str) or not key:
                    raise ValueError(f"graders[{index}] has no name to key it by")
                if key in keyed:
                    raise ValueError(f"two sub-graders are named {key!r}; names must be unique")
                keyed[key] = sub
            value = keyed
        if isinstance(value, Mapping):
            for key, sub in value.items():
                if _get(sub, "type") == "multi":
                    raise ValueError(
                        f"graders.{key} is a multi grader: multi graders cannot be nested; "
                        "put its sub-graders in this grader and combine them in one formula"
                    )
                if not isinstance(key, str) or not _KEY.fullmatch(key):
                    raise ValueError(
                        f"grader key {key!r} must be a name like 'accuracy' (letters, digits, _) "
                        "so calculate_output can refer to it"
                    )
            # A sub-grader printed without a name is named by its key.
            value = {
                key: {**sub, "name": key} if isinstance(sub, Mapping) and "name" not in sub else sub
                for key, sub in value.items()
            }
        return value

    @field_validator("calculate_output")
    @classmethod
    def _check_formula(cls, value: str, info: ValidationInfo) -> str:
        graders = info.data.get("graders")  # absent when the graders themselves failed
        try:
            parse_formula(value, names=set(graders) if graders is not None else None)
        except FormulaSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return value

    def templates(self) -> Iterator[tuple[str, Template]]:
        for key, sub in self.graders.items():
            for path, template in sub.templates():
                yield f"graders.{key}.{path}", template


class Native(BaseGrader):
    """A provider-native grader, passed through untouched and compiled only for its ``target``.

    Examples: ``Native(name="judge", target="bedrock", payload={"lambda_arn": "arn:aws:..."})``
    for your own Lambda, or ``Native(name="g", target="openai", payload={...OpenAI JSON...})``
    for a grader type rlft doesn't model yet. Locally, an OpenAI payload rlft understands is
    graded on the engine; anything else fails closed with error ``unsupported``.
    """

    type: Literal["native"] = "native"
    target: NativeTarget
    payload: dict[str, Any]

    @field_validator("payload", mode="before")
    @classmethod
    def _bounded_payload(cls, value: Any) -> Any:
        from rlft.graders._load import check_grader_data

        check_grader_data(value)  # a ValueError names the limit; shared parts count each time
        return value

    def to_openai(self) -> dict[str, Any]:
        """The payload, when it is OpenAI-style grader JSON (it has a ``type``).

        Raises:
            GraderNotSupportedError: The payload is not grader JSON (a Lambda ARN, for example).
        """
        if not isinstance(self.payload.get("type"), str):
            raise unsupported(
                self.name,
                "openai",
                f"this native {self.target} grader's payload is not grader JSON (it has no 'type')",
            )
        return dict(self.payload)


Grader = Annotated[
    Union[StringCheck, TextSimilarity, Python, ScoreModel, LabelModel, Multi, Native],  # noqa: UP007
    Field(discriminator="type"),
]
"""Any grader: a discriminated union on ``type``, usable as a pydantic field type."""

_BY_TYPE: dict[str, type[BaseGrader]] = {
    "string_check": StringCheck,
    "text_similarity": TextSimilarity,
    "python": Python,
    "score_model": ScoreModel,
    "label_model": LabelModel,
    "multi": Multi,
    "native": Native,
}


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)


def from_openai(data: Mapping[str, Any]) -> Grader:
    """Build a grader from OpenAI grader JSON (or rlft's own saved form), dispatching on ``type``.

    Raises:
        GraderValidationError: Unknown ``type`` or an invalid field (the message names it).
    """
    if isinstance(data, BaseGrader):
        return data
    if not isinstance(data, Mapping):
        raise GraderValidationError(f"a grader is a JSON object, got {type(data).__name__}")
    from rlft.graders._load import check_grader_data

    try:
        check_grader_data(data)
    except ValueError as exc:
        raise GraderValidationError(str(exc)) from None
    kind = data.get("type")
    cls = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise GraderValidationError(
            f"unknown grader type {kind!r}: use one of {', '.join(_BY_TYPE)}", path="type"
        )
    try:
        grader = cls.model_validate(dict(data))
    except ValidationError as exc:
        raise grader_error_from_validation(exc) from None
    return grader  # type: ignore[return-value]


def load(path: str | Path) -> Grader:
    """Load a grader from a ``.json``, ``.yaml`` or ``.yml`` file.

    The file must be UTF-8 text of at most 8 MB, nested at most 64 levels, with at most 100,000
    values once YAML aliases are expanded (see docs/security.md, "Bad input and limits").

    Raises:
        GraderValidationError: The file can't be read or parsed, exceeds a limit, or holds an
            invalid grader; the message is ``file:line: field: problem`` with the fix.
        UsageError: The file is missing or has another suffix.
    """
    from rlft.graders._load import field_line, read_grader_file

    source = Path(path)
    data, text, node = read_grader_file(source)
    try:
        return from_openai(data)
    except GraderValidationError as exc:
        line = field_line(text, node, exc.path) if exc.path else None
        where = f"{source}:{line}" if line else str(source)
        located = GraderValidationError.__new__(GraderValidationError)
        RLFTError.__init__(located, f"{where}: {exc}", path=exc.path)  # keep path, not re-prefix
        raise located from None


def grader_error_from_validation(exc: ValidationError) -> GraderValidationError:
    """Turn pydantic's error list into one ``GraderValidationError`` naming each field."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        path = _loc_to_path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {path.rsplit('.', 1)[-1]!r} (not in the grader schema)"
            if path.endswith("pass_threshold"):
                message += (
                    "; pass_threshold is read on text_similarity, python, score_model and multi "
                    "graders: remove it here"
                )
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append((path, message))
    path, message = problems[0]
    others = [f"{where}: {what}" if where else what for where, what in problems[1:]]
    if others:  # every problem at once, so one edit fixes the file; still one line
        message += "; also " + "; also ".join(others)
    return GraderValidationError(message, path=path)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        # A discriminated union adds the tag to the location: graders.label.string_check.input
        if index >= 2 and loc[index - 2] == "graders" and part in _BY_TYPE:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def unsupported(path: str, target: str, reason: str, hint: str = "") -> GraderNotSupportedError:
    """Shorthand used by the compilers."""
    return GraderNotSupportedError(path=path, target=target, reason=reason, hint=hint)
