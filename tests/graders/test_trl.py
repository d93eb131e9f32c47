"""compile(grader, "trl"): a reward function with TRL 1.16's calling convention."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import anyio
import pytest

from rlft import graders as g
from rlft.exceptions import UsageError
from rlft.graders._sandbox.pool import SandboxPool

LABEL = g.StringCheck(
    name="label",
    input="{{ sample.output_json.label }}",
    reference="{{ item.label }}",
    operation="eq",
)
LENGTH = g.Python(
    name="short",
    source="def grade(sample, item):\n    return 1.0 if len(sample['output_text']) < 40 else 0.0\n",
)
TRIAGE = g.Multi(
    name="triage",
    graders={"label": LABEL, "short": LENGTH},
    calculate_output="0.75 * label + 0.25 * short",
)


class Recorder:
    """Stands in for TRL's ``log_metric`` and ``log_extra`` (``GRPOTrainer._calculate_rewards``)."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra.setdefault(column, []).extend(values)


def call_like_trl(fn: Any, completions: list[Any], recorder: Recorder, **columns: list[Any]) -> Any:
    prompts = [[{"role": "user", "content": "classify"}]] * len(completions)
    return fn(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        trainer_state=object(),
        log_extra=recorder.log_extra,
        log_metric=recorder.log_metric,
        **columns,
    )


def test_trl_names_it_after_the_grader_and_treats_it_as_sync() -> None:
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = g.compile(TRIAGE, "trl")
    assert get_callable_name(fn) == "triage"
    assert not is_async_callable(fn)


def test_plain_completions_and_logging(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    recorder = Recorder()
    completions = ['{"label": "billing"}', '{"label": "tech"}', "not json at all", "x" * 50]
    scores = call_like_trl(
        fn,
        completions,
        recorder,
        label=["billing", "billing", "billing", "tech"],
        other=[1, 2, 3, 4],
    )
    # The third's label sub-grader fails (sample_parse) and scores 0; the formula still runs.
    assert scores == [1.0, 0.25, 0.25, 0.0]
    assert recorder.metrics["triage/failure_rate"] == [0.5]  # 3rd: not JSON; 4th: not JSON
    assert recorder.metrics["triage/errors/sample_parse"] == [0.5]
    assert recorder.metrics["triage/label"] == [0.25]
    assert recorder.metrics["triage/short"] == [0.75]  # only the 50-char output is long
    column = recorder.extra["triage_error"]
    assert column[:2] == ["", ""] and "not valid JSON" in column[2]
    assert fn.calls == 4 and fn.failures == {"sample_parse": 2}


def test_conversational_completions(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    completions = [
        [{"role": "assistant", "content": '{"label": "a"}'}],
        [{"role": "assistant", "content": '{"label": "b"}'}],
    ]
    assert call_like_trl(fn, completions, Recorder(), label=["a", "a"]) == [1.0, 0.25]


def test_item_column_and_bad_columns() -> None:
    fn = g.compile(LABEL, "trl", item_column="item")
    scores = fn(
        completions=['{"label": "x"}', '{"label": "y"}'], item=[{"label": "x"}, '{"label": "x"}']
    )
    assert scores == [1.0, 0.0]
    with pytest.raises(UsageError, match="has 1 values for 2 completions"):
        g.compile(LABEL, "trl")(completions=["a", "b"], label=["x"])
    with pytest.raises(UsageError, match="item_column 'item' is not a dataset column"):
        fn(completions=["a"], label=["x"])
    with pytest.raises(UsageError, match="completions"):
        fn(prompts=["p"])


def test_called_from_many_threads_at_once(pool: SandboxPool) -> None:
    fn = g.compile(TRIAGE, "trl", pool=pool)
    results: dict[int, list[float]] = {}

    def worker(index: int) -> None:
        label = "a" if index % 2 else "b"
        results[index] = fn(completions=['{"label": "a"}'] * 5, label=[label] * 5)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: [1.0] * 5 if i % 2 else [0.25] * 5 for i in range(6)}


def test_pickles_for_worker_processes(pool: SandboxPool) -> None:
    fn = g.compile(LABEL, "trl", pool=pool)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.__name__ == "label" and copy(completions=['{"label": "z"}'], label=["z"]) == [1.0]


def test_completions_without_a_role_key(pool: SandboxPool) -> None:
    """TRL's reward-function docs pass ``[{"content": ...}]``: graded as the model's answer."""
    fn = g.compile(TRIAGE, "trl", pool=pool)
    completions = [[{"content": '{"label": "a"}'}], [{"content": '{"label": "b"}'}]]
    recorder = Recorder()
    assert call_like_trl(fn, completions, recorder, label=["a", "a"]) == [1.0, 0.25]
    assert recorder.metrics["triage/failure_rate"] == [0.0]


@pytest.mark.parametrize("grader", [LABEL, TRIAGE], ids=["inline", "python"])
def test_a_bad_item_row_scores_zero_alone(grader: Any, pool: SandboxPool) -> None:
    fn = g.compile(grader, "trl", pool=pool, item_column="item")
    recorder = Recorder()
    completions = ['{"label": "x"}'] * 4
    items: list[Any] = [None, "not json {", '{"label": "x"}', {"label": "x"}]
    scores = call_like_trl(fn, completions, recorder, item=items)
    assert scores[:2] == [0.0, 0.0] and scores[2] == scores[3] > 0
    reasons = recorder.extra[f"{grader.name}_error"]
    assert "row 0: item column 'item' holds null" in reasons[0]
    assert "row 1: item column 'item' holds 'not json {'" in reasons[1]
    assert reasons[2:] == ["", ""]
    assert fn.failures["sample_parse"] == 2


def test_columns_the_grader_never_reads_are_ignored(pool: SandboxPool) -> None:
    """TRL passes every column; datetimes, numpy arrays and PIL images must not zero scores."""
    import datetime

    import numpy
    from PIL import Image

    fn = g.compile(TRIAGE, "trl", pool=pool)
    count = 3
    scores = call_like_trl(
        fn,
        ['{"label": "a"}'] * count,
        Recorder(),
        label=["a", "b", "a"],
        created=[datetime.datetime(2024, 1, day + 1) for day in range(count)],
        embedding=[numpy.zeros(4, dtype=numpy.float32)] * count,
        image=[Image.new("RGB", (2, 2))] * count,
    )
    assert scores == [1.0, 0.25, 1.0]
    assert fn.failures == {}


def test_python_graders_grade_a_batch_in_one_round_trip(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlft.graders._sandbox import proc

    calls: list[int] = []
    real = proc.Worker.call

    def counting(self: Any, digest: str, source: bytes, rows: bytes, count: int, *rest: Any) -> Any:
        calls.append(count)
        return real(self, digest, source, rows, count, *rest)

    monkeypatch.setattr(proc.Worker, "call", counting)
    fn = g.compile(TRIAGE, "trl", pool=pool)
    completions = ['{"label": "a"}', "y" * 60] * 32
    scores = call_like_trl(fn, completions, Recorder(), label=["a"] * 64)
    assert scores == [1.0, 0.0] * 32
    assert sum(calls) == 64 and len(calls) <= pool.workers  # one call per worker, not per row
    results = anyio.run(g.grade_many, TRIAGE, completions, [{"label": "a"}] * 64)
    assert scores == [result.score for result in results]  # same scores as one at a time


def tiny_model(words: list[str]) -> tuple[Any, Any]:
    """A random two-layer Llama and a word-level tokenizer, built offline (no hub)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    vocab = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    vocab.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab.train_from_iterator(
        [" ".join(words)], trainer=trainers.WordLevelTrainer(special_tokens=special)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=vocab,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        padding_side="left",
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config), tokenizer


def test_inside_a_real_grpo_trainer(tmp_path: Any, pool: SandboxPool) -> None:
    """TRL 1.16 calls it in its real loop and logs its sub-scores and failure rate."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    labels = ["yes", "no", "maybe", "yes"]
    rows = [{"prompt": f"say {label}", "label": label} for label in labels]
    model, tokenizer = tiny_model(["say", *labels])
    fn = g.compile(TRIAGE, "trl", pool=pool)
    config = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        learning_rate=1e-3,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=2,
        max_steps=2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[fn],
        args=config,
        train_dataset=Dataset.from_list(rows),
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    # Completions are not JSON, so the label sub-grader fails (scoring 0) and TRL logs that;
    # the formula still counts the short sub-grader's 1.0 at its 0.25 weight.
    assert logged["triage/failure_rate"] == 1.0 and logged["rewards/triage/mean"] == 0.25
    assert logged["triage/label"] == 0.0 and logged["triage/short"] == 1.0
    assert fn.calls == 16 and fn.failures["sample_parse"] == 16
