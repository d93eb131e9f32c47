"""``rlft.evaluate``: score models (the base, checkpoints, hosted ones) on a dataset with graders.

```python
report = await rlft.evaluate(["runs/base_model", "runs/checkpoint-8"], dataset=valid, grader=g)
print(report.format())
report.plot("eval.png")
```

A model that is a folder on disk is sampled here, greedily, with vLLM when it is installed and
transformers otherwise; any other name is sampled through the provider's ``generate``. Every
completion is graded by ``rlft.graders.grade_many``, the same engine the local trainer uses.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from rlft._models import Checkpoint
from rlft.exceptions import UsageError

if TYPE_CHECKING:
    from rlft.datasets import Dataset
    from rlft.graders import Grader
    from rlft.provider import Provider

__all__ = ["EvalReport", "ModelScore", "evaluate", "is_folder", "local_engine"]

DEFAULT_MAX_TOKENS = 64


class ModelScore(BaseModel):
    """One model's scores on the dataset.

    Attributes:
        label: How the model is shown (``step 8`` for a checkpoint, else the name).
        model: The folder or model id that was sampled.
        source: ``"transformers"`` / ``"vllm"`` (a local folder) or ``"provider"``.
        count: Completions graded.
        mean: Mean score.
        pass_rate: Share of completions that passed (the grader's ``pass_threshold``, else a
            score of at least ``pass_threshold`` given to ``evaluate``).
        grader_means: Mean score per sub-grader (a ``multi`` grader), else the grader's own.
        error_rate: Share of grades with an error (failed closed: scored 0).
        error_rates: Share of grades per error kind.
        completions: The completions, in dataset order.
        scores: The scores, in dataset order.
    """

    model_config = ConfigDict(frozen=True)

    label: str
    model: str
    source: Literal["transformers", "vllm", "provider"]
    count: int
    mean: float
    pass_rate: float
    grader_means: dict[str, float] = Field(default_factory=dict)
    error_rate: float
    error_rates: dict[str, float] = Field(default_factory=dict)
    completions: list[str] = Field(default_factory=list, repr=False)
    scores: list[float] = Field(default_factory=list, repr=False)


class EvalReport(BaseModel):
    """What ``rlft.evaluate`` measured: one ``ModelScore`` per model, in the order given."""

    model_config = ConfigDict(frozen=True)

    grader: str
    rows: int
    scores: list[ModelScore]

    def best(self) -> ModelScore:
        """The model with the highest mean (the first one on a tie)."""
        return max(self.scores, key=lambda score: score.mean)

    def format(self) -> str:
        """A plain-text table: model, mean, pass rate, per-grader means, error rate."""
        graders = sorted({key for score in self.scores for key in score.grader_means})
        header = ["model", "n", "mean", "pass", *graders, "errors"]
        lines = [header]
        for score in self.scores:
            lines.append(
                [
                    score.label,
                    str(score.count),
                    f"{score.mean:.3f}",
                    f"{score.pass_rate:.0%}",
                    *[f"{score.grader_means.get(key, 0.0):.3f}" for key in graders],
                    f"{score.error_rate:.0%}",
                ]
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )

    def plot(self, path: str | Path) -> Path:
        """Write a bar chart comparing the models' mean and pass rate (PNG); return the path.

        Raises:
            MissingDependencyError: matplotlib is not installed (``rlft[local]``).
        """
        if importlib.util.find_spec("matplotlib") is None:
            from rlft.exceptions import MissingDependencyError

            raise MissingDependencyError("the eval plot", package="matplotlib", extra="local")
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        labels = [score.label for score in self.scores]
        positions = list(range(len(labels)))
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.5))
        width = 0.4
        ax.bar(
            [p - width / 2 for p in positions], [s.mean for s in self.scores], width, label="mean"
        )
        ax.bar(
            [p + width / 2 for p in positions],
            [s.pass_rate for s in self.scores],
            width,
            label="pass rate",
        )
        ax.set_xticks(positions, labels, rotation=20, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{self.grader}: {self.rows} rows")
        ax.legend()
        fig.tight_layout()
        fig.savefig(target)
        plt.close(fig)
        return target


def local_engine() -> Literal["vllm", "transformers"]:
    """What samples a local folder: vLLM when it is installed, else transformers."""
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise UsageError(
            f"{folder}: not a model folder (no config.json); pass a folder written by "
            "save_pretrained, such as a checkpoint listed by `rlft jobs checkpoints JOB_ID`"
        )


def _sample_transformers(
    folder: Path, prompts: list[list[dict[str, Any]]], max_tokens: int
) -> list[str]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        from rlft.exceptions import MissingDependencyError

        raise MissingDependencyError(
            "evaluating a local model", package="transformers", extra="local"
        ) from None
    from transformers.utils import logging as hf_logging

    from rlft.datasets import render_prompt

    # The table is the output: no weight-loading bars.
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{folder}: the model does not load ({reason}); pass a folder written by "
            "save_pretrained with its tokenizer"
        ) from None
    model.eval()  # type: ignore[no-untyped-call]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    for messages in prompts:
        inputs = tokenizer(render_prompt(messages, tokenizer), return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs, max_new_tokens=max_tokens, do_sample=False, pad_token_id=pad
            )
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        answers.append(str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip())
    return answers


def _sample_vllm(folder: Path, prompts: list[list[dict[str, Any]]], max_tokens: int) -> list[str]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(folder))
    outputs = llm.chat(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens))
    return [str(output.outputs[0].text).strip() for output in outputs]


async def _sample_folder(
    folder: Path, prompts: list[list[dict[str, Any]]], max_tokens: int
) -> tuple[Literal["vllm", "transformers"], list[str]]:
    _check_folder(folder)
    engine = local_engine()
    sampler = _sample_vllm if engine == "vllm" else _sample_transformers
    return engine, await anyio.to_thread.run_sync(sampler, folder, prompts, max_tokens)


def is_folder(model: str | Path | Checkpoint) -> bool:
    """Whether ``model`` names a folder on disk (sampled here) rather than a model id."""
    return Path(model.model if isinstance(model, Checkpoint) else str(model)).is_dir()


def _label(model: str | Path | Checkpoint) -> tuple[str, str]:
    if isinstance(model, Checkpoint):
        return (f"step {model.step}" if model.step is not None else model.id), model.model
    text = str(model)
    path = Path(text)
    return (path.name if path.is_dir() else text), text


async def evaluate(
    models: Sequence[str | Path | Checkpoint],
    *,
    dataset: Dataset,
    grader: Grader,
    provider: Provider | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    pass_threshold: float = 1.0,
    concurrency: int = 8,
    plot: str | Path | None = None,
) -> EvalReport:
    """Score each model on ``dataset`` with ``grader``; one completion per row, greedy.

    Args:
        models: Model folders on disk (the base model, checkpoints), ``Checkpoint`` objects, or
            model ids the provider serves (a hosted base model or fine-tuned model).
        dataset: The rows to answer; their item fields feed the grader.
        grader: The job's grader.
        provider: Samples the models that are not folders (its ``generate``; needs the
            ``inference`` capability).
        max_tokens: Longest completion (default 64).
        limit: Score only the first ``limit`` rows.
        pass_threshold: A grade passes at this score, for graders without their own
            ``pass_threshold``.
        concurrency: Grades in flight at once.
        plot: Also write the comparison chart here (PNG).

    Raises:
        UsageError: No models, an empty dataset, a folder that does not load, or a model id with
            no provider to sample it.
    """
    from rlft.graders import grade_many

    if not models:
        raise UsageError("nothing to evaluate: name at least one model folder or model id")
    rows = list(dataset)[:limit] if limit is not None else list(dataset)
    if not rows:
        raise UsageError("the evaluation dataset has no rows")
    prompts = [row.messages for row in rows]
    items: list[Mapping[str, Any] | None] = [row.item for row in rows]
    tokens = max_tokens or DEFAULT_MAX_TOKENS
    scores = []
    for model in models:
        label, name = _label(model)
        folder = Path(name)
        source: Literal["vllm", "transformers", "provider"]
        if is_folder(name):
            source, completions = await _sample_folder(folder, prompts, tokens)
        elif provider is None:
            raise UsageError(
                f"{name}: no such model folder, and no provider to sample a model id; pass a "
                "folder written by save_pretrained, or --provider for a hosted model"
            )
        else:
            source = "provider"
            completions = await provider.generate(model=name, prompts=prompts, max_tokens=tokens)
        results = await grade_many(grader, completions, items, concurrency=concurrency)
        scores.append(_score(label, name, source, completions, results, grader, pass_threshold))
    report = EvalReport(grader=grader.name or grader.type, rows=len(rows), scores=scores)
    if plot is not None:
        report.plot(plot)
    return report


def _score(
    label: str,
    model: str,
    source: Literal["vllm", "transformers", "provider"],
    completions: list[str],
    results: Sequence[Any],
    grader: Grader,
    pass_threshold: float,
) -> ModelScore:
    count = len(results)
    values = [result.score for result in results]
    passed = [
        result.passed if result.passed is not None else result.score >= pass_threshold
        for result in results
    ]
    subs: dict[str, list[float]] = {}
    kinds: dict[str, int] = {}
    for result in results:
        for key, value in (result.sub_scores or {grader.name or grader.type: result.score}).items():
            subs.setdefault(key, []).append(value)
        for kind in set(result.errors):
            kinds[str(kind)] = kinds.get(str(kind), 0) + 1
    return ModelScore(
        label=label,
        model=model,
        source=source,
        count=count,
        mean=sum(values) / count,
        pass_rate=sum(passed) / count,
        grader_means={key: sum(v) / len(v) for key, v in subs.items()},
        error_rate=sum(1 for result in results if result.errors) / count,
        error_rates={kind: n / count for kind, n in sorted(kinds.items())},
        completions=completions,
        scores=values,
    )
