"""The Lambda package carries the libraries its graders import (issue 14, item 2).

The wheels come from PyPI through pip (``--platform manylinux… --only-binary=:all:``) and are
cached in ``~/.cache/rlft/lambda``, so only the first run downloads. The clean-interpreter test
builds for this machine's Python (the brief: Lambda's own 3.12 cannot run here) and runs the
handler under ``python -I -S`` with only the unpacked zip and the standard library on its path.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.exceptions import GraderNotSupportedError
from rlft.graders.formats import _wheels

from .test_lambda import assert_bedrock_reply, bedrock_sample

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
METRICS = ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_l")
SIMILAR = g.Multi(
    name="similar",
    graders={
        metric: g.TextSimilarity(
            name=metric,
            input="{{ sample.output_text }}",
            reference="{{ item.reference_answer }}",
            evaluation_metric=metric,
        )
        for metric in METRICS
    },
    calculate_output=" + ".join(METRICS),
)
PAIRS = [
    ("Paris", "Paris"),
    ("The capital of France is Paris.", "Paris is the capital of France"),
    ("the quick brown fox", "The quick brown dog jumps"),
    ("巴黎是法国的首都", "巴黎是首都"),
    ("London", "Paris"),
]


def test_a_text_similarity_grader_scores_in_a_clean_interpreter_what_it_scores_here(
    tmp_path: Path,
) -> None:
    package = g.compile(SIMILAR, "bedrock", python_version=HERE)
    assert package.requirements == ()  # nothing left for a layer
    assert any(spec.startswith("rouge-score==") for spec in package.bundled)
    assert any(spec.startswith("rapidfuzz==") for spec in package.bundled)
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        archive.extractall(tmp_path)
    event = [
        bedrock_sample(f"s{index}", answer, reference_answer=reference)
        for index, (answer, reference) in enumerate(PAIRS)
    ]
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "for name in ('rlft', 'pydantic'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'{name} is importable: not a clean interpreter')\n"
        "import rlft_grader_handler, rapidfuzz, rouge_score, nltk\n"
        "for module in (rapidfuzz, rouge_score, nltk):\n"
        f"    assert module.__file__.startswith({str(tmp_path)!r}), module.__file__\n"
        f"print(json.dumps(rlft_grader_handler.lambda_handler({event!r}, None)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert_bedrock_reply(reply, [f"s{index}" for index in range(len(PAIRS))])

    async def local() -> list[Any]:
        return await g.grade_many(
            SIMILAR, [a for a, _ in PAIRS], [{"reference_answer": r} for _, r in PAIRS]
        )

    expected = anyio.run(local)
    for row, result in zip(reply, expected, strict=True):
        assert result.ok
        assert row["aggregate_reward_score"] == result.score  # exactly, not approximately
        metrics = {m["name"]: m["value"] for m in row["metrics_list"]}
        assert {key: metrics[key] for key in METRICS} == result.sub_scores
        assert metrics["grader_error"] == 0.0


def test_packages_are_cached_and_reproducible() -> None:
    first = g.compile(SIMILAR, "bedrock", python_version=HERE)
    second = g.compile(SIMILAR, "bedrock", python_version=HERE)
    assert first.zip_bytes == second.zip_bytes


def test_bundle_false_lists_requirements_for_a_layer() -> None:
    package = g.compile(SIMILAR, "bedrock", bundle=False)
    assert package.bundled == () and "rapidfuzz>=3" in package.requirements
    assert not [name for name in package.files if name.startswith("rapidfuzz/")]


def test_a_library_pip_cannot_install_is_refused_at_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: pip finds nothing
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    fuzzy = SIMILAR.graders["fuzzy_match"]
    with pytest.raises(GraderNotSupportedError, match="pip could not install rapidfuzz==") as info:
        g.compile(fuzzy, "bedrock", cache_dir=tmp_path / "cache")
    assert info.value.target == "bedrock" and "bundle=False" in str(info.value)


def test_a_wheel_without_the_imported_module_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def installs_nothing(specs: Any, **kwargs: Any) -> Path:
        return tmp_path  # pip "succeeded" but the folder lacks the module

    monkeypatch.setattr(
        "rlft.graders.formats.lambda_.install_for_lambda", installs_nothing, raising=True
    )
    code = g.Python(name="code", source="import numpy\ndef grade(s, i):\n    return 1.0\n")
    with pytest.raises(GraderNotSupportedError, match="imports 'numpy'") as info:
        g.compile(code, "bedrock")
    assert info.value.path == "code"


def test_meteor_without_wordnet_here_is_refused_before_any_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nltk

    def no_download(specs: Any, **kwargs: Any) -> Path:
        raise AssertionError("the data check comes first")

    def missing(resource: str) -> None:
        raise LookupError(resource)

    monkeypatch.setattr("rlft.graders.formats.lambda_.install_for_lambda", no_download)
    monkeypatch.setattr(nltk.data, "find", missing)
    meteor = g.TextSimilarity(
        name="m", input="{{ sample.output_text }}", reference="x", evaluation_metric="meteor"
    )
    with pytest.raises(GraderNotSupportedError, match="wordnet"):
        g.compile(meteor, "bedrock")


def test_platform_tags_follow_the_architecture() -> None:
    assert _wheels.platform_tags("x86_64") == ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
    assert _wheels.platform_tags("arm64")[0] == "manylinux_2_28_aarch64"


def test_an_unknown_python_version_is_a_usage_error() -> None:
    from rlft.exceptions import UsageError

    with pytest.raises(UsageError, match="python_version"):
        g.compile(SIMILAR, "bedrock", python_version="banana")


def test_libraries_over_lambdas_unzipped_limit_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rlft.graders.formats.lambda_._UNZIPPED_LIMIT", 1024)
    with pytest.raises(GraderNotSupportedError, match="Lambda allows 250 MB"):
        g.compile(SIMILAR.graders["fuzzy_match"], "bedrock")
