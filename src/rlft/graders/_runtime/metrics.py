"""The ``text_similarity`` metrics, each computed by the field's own library (imported on use).

Choices (OpenAI documents the metric names but not their exact settings; see docs/graders.md):

- ``fuzzy_match``: ``rapidfuzz.fuzz.WRatio(input, reference,
  processor=rapidfuzz.utils.default_process) / 100``, the function and preprocessing OpenAI's
  graders guide shows: case, punctuation and surrounding whitespace are ignored. ``WRatio``
  takes the best of several ratios, including partial ones, so an output that merely contains
  the reference scores about 0.9 (``rlft grader probe`` flags that).
- ``bleu``: ``nltk.translate.bleu_score.sentence_bleu`` with uniform weights over 1..N-grams,
  where N is 4 or the output's token count if shorter ("effective order"), and Chen & Cherry
  smoothing ``method1``. So a text scores 1.0 against itself at any length, and an output with
  no word in common with the reference scores 0.
- ``gleu``: ``nltk.translate.gleu_score.sentence_gleu`` (Google BLEU, 1–4-grams).
- ``meteor``: ``nltk.translate.meteor_score.meteor_score``; it needs NLTK's ``wordnet`` corpus,
  which is data, not code: without it this metric fails with the install command.
- ``bleu``/``gleu``/``meteor`` tokenise with ``\\w+|[^\\w\\s]`` on the text as written (the
  NLTK tokenisers that need ``punkt`` data are avoided so the metrics work offline), except that
  each character of a script written without spaces (Chinese, Japanese kana, Thai, Lao, Khmer,
  Myanmar) is a token of its own.
- ``rouge_1``…``rouge_5``, ``rouge_l``: ``rouge_score.rouge_scorer.RougeScorer`` F-measure,
  ``use_stemmer=False``, with a Unicode tokenizer: lower-cased runs of letters and digits in any
  script (identical to rouge-score's own ``[a-z0-9]+`` tokens on ASCII text, where rouge-score
  drops every other letter), and one token per character in scripts written without spaces.
  When either text has fewer than n tokens, ``rouge_n`` uses n = the shorter text's token
  count, so a short exact answer scores 1.0 rather than 0 (there are no n-grams to compare).
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

# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, kana, CJK ideographs.
_NO_SPACE = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Myanmar, Khmer
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana, CJK ideographs
)
_TOKEN = re.compile(rf"[{_NO_SPACE}]|[^\W{_NO_SPACE}]+|[^\w\s]")
_ROUGE_TOKEN = re.compile(rf"[{_NO_SPACE}]|[^\W_{_NO_SPACE}]+")


class MetricUnavailableError(RuntimeError):
    """A metric's library or data is missing. ``str()`` says how to install it."""


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _fuzzy(hypothesis: str, reference: str) -> float:
    from rapidfuzz import fuzz, utils

    # OpenAI's graders guide: fuzz.WRatio(output, reference, processor=utils.default_process)
    return float(fuzz.WRatio(hypothesis, reference, processor=utils.default_process)) / 100.0


def _bleu(hypothesis: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp or not ref or not set(hyp) & set(ref):
        return 0.0  # smoothing would otherwise give a wholly wrong answer 0.1
    order = min(4, len(hyp))  # effective order: a 1-word answer has no 2-grams to miss
    weights = tuple(1.0 / order for _ in range(order))
    smoothing = SmoothingFunction().method1
    return float(sentence_bleu([ref], hyp, weights=weights, smoothing_function=smoothing))


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


class _RougeTokenizer:
    """rouge-score's tokenizer interface, Unicode-aware (see the module docstring)."""

    def tokenize(self, text: str) -> list[str]:
        return _ROUGE_TOKEN.findall(text.lower())


_ROUGE_TOKENIZER = _RougeTokenizer()


@functools.cache
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=False, tokenizer=_ROUGE_TOKENIZER)


def _rouge(n: int | None) -> Callable[[str, str], float]:
    def score(hypothesis: str, reference: str) -> float:
        kind = "rougeL"
        if n is not None:
            shortest = min(
                len(_ROUGE_TOKENIZER.tokenize(hypothesis)),
                len(_ROUGE_TOKENIZER.tokenize(reference)),
            )
            kind = f"rouge{max(1, min(n, shortest))}"  # fewer than n tokens: no n-grams
        result = _rouge_scorer(kind).score(reference, hypothesis)  # (target, prediction)
        return float(result[kind].fmeasure)

    return score


_LEXICAL: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    "meteor": _meteor,
    **{f"rouge_{n}": _rouge(n) for n in range(1, 6)},
    "rouge_l": _rouge(None),
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
