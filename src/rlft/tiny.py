"""The tiny demonstration model: a Llama-config causal LM and a word-level tokenizer, both built
offline from a dataset's own words.

The local runner trains it for the quickstart (``model = "tiny"``), and test servers for other
backends serve it (``rlft.testing``), so it is public. torch, transformers and tokenizers load
on first call only.

Recipe and pitfalls: reference/trl_local.md §3. A Llama config, not Qwen2: with a ``qwen2``
config, transformers 5.x ``AutoTokenizer`` silently swaps our tokenizer for a byte-level BPE on
reload, so a trained checkpoint would score 0%.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "build_tiny_model",
    "corpus_from_rows",
    "strings_in",
    "text_config",
    "word_tokenizer",
]

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
# Renders conversational prompts as plain words ("user : ... . assistant :"), which a
# whitespace word-level tokenizer splits cleanly.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} . {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
ROLE_WORDS = ["system", "user", "assistant", "tool", "developer", ":", "."]


def strings_in(value: Any) -> Iterable[str]:
    """Every string (and number, as text) inside nested mappings and sequences."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from strings_in(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from strings_in(inner)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def corpus_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every string in the prompts and item fields, so reference answers are in the vocabulary."""
    corpus = [" ".join(ROLE_WORDS)]
    for row in rows:
        corpus.extend(strings_in(row))
    return corpus


def word_tokenizer(corpus: Iterable[str], *, extra_special_tokens: Iterable[str] = ()) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` trained on ``corpus``, with the tiny chat template.

    ``extra_special_tokens`` are added whole (``"<image>"`` stays one token), after the four
    specials every tiny model has.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = [*SPECIAL_TOKENS, *extra_special_tokens]
    words.train_from_iterator(corpus, trainer=trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=words,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        padding_side="left",  # TRL requires left padding for generation
        truncation_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def text_config(tokenizer: Any) -> Any:
    """The tiny language model's ``LlamaConfig`` (87K parameters with a ~70-word vocabulary)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_model(
    rows: Iterable[Mapping[str, Any]], *, folder: Path, seed: int
) -> tuple[Any, Any, int]:
    """Build, save into ``folder`` and return ``(model, tokenizer, parameter count)``.

    The folder then reloads offline with ``AutoModelForCausalLM``/``AutoTokenizer``, so resumed
    workers and checkpoints never need the dataset again.
    """
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = word_tokenizer(corpus_from_rows(rows))
    config = text_config(tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # PEFT records model.name_or_path as the adapter's base; a local folder keeps reloads
    # offline (reference/trl_local.md §6).
    model.name_or_path = str(folder)
    params = sum(p.numel() for p in model.parameters())
    return model, tokenizer, params
