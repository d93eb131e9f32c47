"""The ``text_similarity`` metrics, each computed by the field's own library (imported on use).

Choices (OpenAI documents the metric names but not their exact settings; see docs/graders.md):

- ``fuzzy_match``: ``rapidfuzz.fuzz.ratio(input, reference) / 100`` (normalised Indel
  similarity), case-sensitive, no preprocessing. Not ``WRatio``, whose partial matching gives
  ~0.9 to any output that merely *contains* the reference, which a policy can game.
- ``bleu``: ``nltk.translate.bleu_score.sentence_bleu`` with uniform 1–4-gram weights and
  Chen & Cherry smoothing ``method1`` (without smoothing, any sentence shorter than four tokens
  that misses a 4-gram scores exactly 0).
- ``gleu``: ``nltk.translate.gleu_score.sentence_gleu`` (Google BLEU, 1–4-grams).
- ``meteor``: ``nltk.translate.meteor_score.meteor_score``; it needs NLTK's ``wordnet`` corpus,
  which is data, not code: without it this metric fails with the install command.
- ``bleu``/``gleu``/``meteor`` tokenise with ``\\w+|[^\\w\\s]`` on the text as written (the
  NLTK tokenisers that need ``punkt`` data are avoided so the metrics work offline).
- ``rouge_1``…``rouge_5``, ``rouge_l``: ``rouge_score.rouge_scorer.RougeScorer`` F-measure,
  ``use_stemmer=False`` (the library default). Its tokenizer lower-cases and keeps only
  ``[a-z0-9]`` runs, so text in other scripts scores 0: prefer ``fuzzy_match`` there.
- ``cosine``: needs an embedder; the score is the cosine of the two embeddings, floored at 0.

Part of the engine runtime copied into the Bedrock Lambda package: standard library only at
import time.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "METEOR_DATA_FIX",
    "MetricUnavailableError",
    "cosine_similarity",
    "lexical_similarity",
    "requirements_for",
]

METEOR_DATA_FIX = "python -m nltk.downloader wordnet omw-1.4"

_TOKEN = re.compile(r"\w+|[^\w\s]")


class MetricUnavailableError(RuntimeError):
    """A metric's library or data is missing. ``str()`` says how to install it."""


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _fuzzy(hypothesis: str, reference: str) -> float:
    try:
        from rapidfuzz import fuzz
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MetricUnavailableError("fuzzy_match needs rapidfuzz: pip install rapidfuzz") from exc
    return float(fuzz.ratio(hypothesis, reference)) / 100.0


def _bleu(hypothesis: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp or not ref:
        return 0.0
    return float(sentence_bleu([ref], hyp, smoothing_function=SmoothingFunction().method1))


def _gleu(hypothesis: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp or not ref:
        return 0.0
    return float(sentence_gleu([ref], hyp))


@functools.cache
def _wordnet() -> Any:
    try:
        import nltk
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MetricUnavailableError("meteor needs nltk: pip install nltk") from exc
    for resource in ("corpora/wordnet", "corpora/wordnet.zip"):
        try:
            nltk.data.find(resource)
            break
        except LookupError:
            continue
    else:
        raise MetricUnavailableError(
            "meteor needs NLTK's wordnet data, which is not installed and cannot be fetched "
            f"offline: run `{METEOR_DATA_FIX}` (or copy nltk_data from a connected machine and "
            "set NLTK_DATA), or use rouge_l / bleu / fuzzy_match instead"
        )
    from nltk.corpus import wordnet

    return wordnet


def _meteor(hypothesis: str, reference: str) -> float:
    wordnet = _wordnet()
    from nltk.translate.meteor_score import meteor_score

    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp or not ref:
        return 0.0
    return float(meteor_score([ref], hyp, wordnet=wordnet))


@functools.cache
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=False)


def _rouge(kind: str) -> Callable[[str, str], float]:
    def score(hypothesis: str, reference: str) -> float:
        result = _rouge_scorer(kind).score(reference, hypothesis)  # (target, prediction)
        return float(result[kind].fmeasure)

    return score


_LEXICAL: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    "meteor": _meteor,
    **{f"rouge_{n}": _rouge(f"rouge{n}") for n in range(1, 6)},
    "rouge_l": _rouge("rougeL"),
}

# What a Lambda needs installed (as a layer or vendored) to compute each metric.
_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "fuzzy_match": ("rapidfuzz>=3",),
    "bleu": ("nltk>=3.9",),
    "gleu": ("nltk>=3.9",),
    "meteor": ("nltk>=3.9",),
    **{f"rouge_{n}": ("rouge-score>=0.1.2", "nltk>=3.9") for n in range(1, 6)},
    "rouge_l": ("rouge-score>=0.1.2", "nltk>=3.9"),
}


def requirements_for(metric: str) -> tuple[str, ...]:
    """The pip requirements a metric needs outside rlft's own environment."""
    return _REQUIREMENTS.get(metric, ())


def lexical_similarity(metric: str, hypothesis: str, reference: str) -> float:
    """Score ``hypothesis`` against ``reference`` with a non-embedding metric, in [0, 1].

    Raises:
        MetricUnavailableError: The metric's library or data is missing.
        KeyError: Unknown metric (the spec rejects those at build time).
    """
    fn = _LEXICAL[metric]
    try:
        value = fn(hypothesis, reference)
    except ImportError as exc:
        raise MetricUnavailableError(
            f"{metric} needs {exc.name or 'a missing package'}: "
            f"pip install {' '.join(requirements_for(metric))}"
        ) from exc
    except LookupError as exc:  # NLTK data missing somewhere we did not foresee
        raise MetricUnavailableError(f"{metric} needs NLTK data: {exc}") from exc
    return min(1.0, max(0.0, value))


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of two vectors, floored at 0 so a score stays in [0, 1]."""
    if len(a) != len(b) or not a:
        raise ValueError(f"embeddings have lengths {len(a)} and {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0:
        return 0.0
    return max(0.0, min(1.0, dot / norm))
