"""A base model and a checkpoint that differ, built offline in seconds (nothing is trained).

The base is the local runner's tiny model built from the rows (``build_tiny_model``, as a local
job does). The "checkpoint" is a copy whose weights were set by hand so that greedy decoding
always says "yes": the attention and MLP outputs are zeroed (the residual is the token's
embedding), the final norm keeps one positive coordinate, and the tied embedding gives "yes" the
largest logit there. It is a real transformers folder; only its weights are chosen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlft.graders import StringCheck

ROWS = [
    {"messages": [{"role": "user", "content": f"is {n} even"}], "answer": ("no", "yes")[n % 2 == 0]}
    for n in range(6)
]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlft.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("eval-models")
    base, checkpoint = root / "base_model", root / "checkpoint-8"
    build_tiny_model(ROWS, folder=base, seed=0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    yes = tokenizer.convert_tokens_to_ids("yes")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        embed = model.model.embed_tokens.weight
        embed[:, 0] = 1.0
        embed[yes, 0] = 5.0
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return base, checkpoint


@pytest.fixture
def grader() -> StringCheck:
    sample, answer = "{{ sample.output_text }}", "{{ item.answer }}"
    return StringCheck(name="exact", input=sample, reference=answer, operation="eq")


@pytest.fixture
def dataset_file(tmp_path: Path) -> Path:
    path = tmp_path / "valid.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path
