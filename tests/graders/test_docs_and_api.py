"""docs/graders.md stays true to the code; rlft.graders keeps a curated, light public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

from rlft import graders as g
from rlft.graders._result import ERROR_KINDS
from rlft.graders._sandbox.pool import SandboxLimits

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "graders.md").read_text()


def test_docs_cover_every_type_error_kind_and_metric() -> None:
    for type_ in (
        "string_check",
        "text_similarity",
        "python",
        "score_model",
        "label_model",
        "multi",
        "native",
    ):
        assert f"`{type_}`" in DOCS
    for kind in ERROR_KINDS:
        assert f"| `{kind}` |" in DOCS, kind
    for metric in ("fuzzy_match", "bleu", "gleu", "meteor", "rouge_l", "cosine"):
        assert metric in DOCS
    assert "python -m nltk.downloader wordnet omw-1.4" in DOCS


def test_docs_sandbox_limits_are_the_defaults() -> None:
    limits = SandboxLimits()
    assert f"| time per call | {limits.timeout_s:g} s |" in DOCS
    assert f"| memory | {limits.memory_mb} MB |" in DOCS
    assert f"| source size | {limits.max_source_bytes:,} bytes |" in DOCS
    assert f"| captured output | {limits.max_output_bytes:,} bytes per call |" in DOCS


def test_all_is_sorted_complete_and_documented() -> None:
    names = {n for n, v in vars(g).items() if n[0] != "_" and not isinstance(v, ModuleType)}
    assert g.__all__ == sorted(g.__all__, key=str.casefold)
    assert set(g.__all__) == names
    for name in g.__all__:
        value = getattr(g, name)
        if callable(value) and not isinstance(value, type(g.Grader)):
            assert (getattr(value, "__doc__", None) or "").strip(), name


def test_import_is_light() -> None:
    code = (
        "import sys, rlft.graders, rlft.cli._graders\n"
        "heavy = {'torch', 'trl', 'transformers', 'datasets', 'boto3', 'botocore', 'nltk',\n"
        "         'rouge_score', 'rapidfuzz', 'httpx', 'sacrebleu', 'numpy', 'openai'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
