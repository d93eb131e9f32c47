"""Rendering per backend, pinned by golden files in tests/datasets/golden/.

After an intended change, regenerate with ``RLFT_UPDATE_GOLDEN=1 pytest tests/datasets`` and
review the diff: the golden files are the contract with each backend's file format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rlft.datasets import Dataset, render, render_prompt, to_trl_rows
from rlft.exceptions import DatasetValidationError, UsageError

from .ds_helpers import row

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RLFT_UPDATE_GOLDEN") == "1"


def golden(name: str, actual: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(actual)
    assert actual == path.read_bytes(), f"{name} changed; see the module docstring"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_jsonl(GOLDEN / "input.jsonl")


@pytest.mark.parametrize("target", ["openai", "azure", "bedrock"])
def test_jsonl_rendering_matches_golden(dataset: Dataset, target: str) -> None:
    golden(f"{target}.jsonl", render(dataset, target))


def test_jsonl_rendering_is_utf8_lf_one_object_per_row(dataset: Dataset) -> None:
    for target in ("openai", "bedrock"):
        data = render(dataset, target)
        assert data.endswith(b"\n") and b"\r" not in data and not data.startswith(b"\xef")
        lines = data.decode("utf-8").splitlines()
        assert len(lines) == len(dataset)
        assert all(isinstance(json.loads(line), dict) for line in lines)
        assert "démarrage 📱" in data.decode()  # not \u-escaped


def test_openai_rows_keep_items_top_level(dataset: Dataset) -> None:
    rows = [json.loads(line) for line in render(dataset, "openai").splitlines()]
    assert [{k: v for k, v in r.items() if k not in ("messages", "tools")} for r in rows] == [
        e.item for e in dataset
    ]
    assert rows[3]["tools"] == dataset[3].tools and "tools" not in rows[0]


def test_bedrock_reference_answer_convention(dataset: Dataset) -> None:
    rows = [json.loads(line) for line in render(dataset, "bedrock").splitlines()]
    assert all(list(r)[0] == "messages" and "reference_answer" in r for r in rows)
    # A row's own reference_answer is kept as is...
    assert rows[2]["reference_answer"] == {"final_answer": "51"}
    # ...and a row without one sends its item fields, which also stay top-level for the grader.
    assert rows[0]["reference_answer"] == {"label": "billing", "reason": "duplicate charge"}
    assert rows[0]["label"] == "billing"


def test_render_is_pure(dataset: Dataset) -> None:
    before = dataset.content_hash
    assert render(dataset, "bedrock") == render(dataset, "bedrock")
    assert dataset.content_hash == before


def test_render_refuses_other_targets(dataset: Dataset) -> None:
    with pytest.raises(UsageError, match="to_trl_rows"):
        render(dataset, "local")
    with pytest.raises(UsageError, match=r"no provider 'nosuch-backend'.*installed: .*bedrock"):
        render(dataset, "nosuch-backend")


def test_trl_rows_match_golden(dataset: Dataset) -> None:
    rows = to_trl_rows(dataset)
    text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    golden("trl.json", text.encode())


def test_trl_rows_have_a_prompt_and_exactly_each_rows_items(dataset: Dataset) -> None:
    rows = to_trl_rows(dataset)
    assert all(list(r)[0] == "prompt" for r in rows)
    assert [{k: v for k, v in r.items() if k != "prompt"} for r in rows] == [
        e.item for e in dataset
    ]  # a missing field stays missing: never padded with None
    assert all("tools" not in r for r in rows)
    # A list of text parts becomes one string for the chat template.
    assert rows[2]["prompt"] == [{"role": "user", "content": "What is 17 * 3?"}]


def test_uniform_trl_rows_feed_a_hugging_face_dataset() -> None:
    import datasets

    ds = Dataset.from_records([row("a", label="x", n=1), row("b", label="y", n=2)])
    hf = datasets.Dataset.from_list(to_trl_rows(ds))
    assert hf.column_names == ["prompt", "label", "n"]
    assert hf[1]["label"] == "y" and hf[0]["prompt"] == [{"role": "user", "content": "a"}]


def test_trl_rows_refuse_columns_trl_uses() -> None:
    ds = Dataset.from_records([row(label="a"), row(completions="x"), row(trainer_state=1)])
    with pytest.raises(DatasetValidationError) as caught:
        to_trl_rows(ds)
    assert [(p.row, p.field) for p in caught.value.report.errors] == [
        (1, "item.completions"),
        (2, "item.trainer_state"),
    ]


def _tokenizer(chat_template: str | None) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    tokenizer.chat_template = chat_template
    return tokenizer


TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def test_render_prompt_uses_the_chat_template(dataset: Dataset) -> None:
    prompt = render_prompt(to_trl_rows(dataset)[1]["prompt"], _tokenizer(TEMPLATE))
    golden("prompt_chat.txt", prompt.encode())
    assert prompt.endswith("<|assistant|>\n")  # the generation prompt is added


def test_render_prompt_falls_back_to_plain_text(dataset: Dataset) -> None:
    prompt = render_prompt(dataset[1].messages, _tokenizer(None))
    golden("prompt_plain.txt", prompt.encode())
    assert render_prompt(dataset[1].messages, None) == prompt
    parts = render_prompt(dataset[2].messages, None)
    assert parts == "user: What is 17 * 3?\nassistant:"
