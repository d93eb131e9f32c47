"""Sample a local model once per prompt, in a subprocess (``rlft preflight`` on ``local``).

Run as ``python -m rlft_providers.local._sample``: a JSON request on stdin
(``{"model", "prompts", "max_tokens"}``, optionally ``"greedy": true``), a JSON list of
completions on stdout. torch and transformers load only here, never in the caller.

Prompts with image parts (data or https URLs), or a model folder with an image processor (a
vision-language checkpoint the local runner wrote), go through ``AutoProcessor`` and
``AutoModelForImageTextToText``; the rest through ``AutoTokenizer``/``AutoModelForCausalLM``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def sample(
    model_name: str, prompts: list[list[dict[str, Any]]], max_tokens: int, *, greedy: bool = False
) -> list[str]:
    """One completion per prompt (sampled, or the most likely tokens with ``greedy``)."""
    from rlft_providers.local._plan import image_shape
    from rlft_providers.local._vision import is_vlm_folder

    if image_shape(prompts) is not None or is_vlm_folder(model_name):
        return _sample_vlm(model_name, prompts, max_tokens, greedy=greedy)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlft.datasets import render_prompt

    tokenizer = AutoTokenizer.from_pretrained(model_name, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_name, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    answers = []
    for messages in prompts:
        text = render_prompt(messages, tokenizer)
        inputs = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=not greedy,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        answers.append(str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip())
    return answers


def _sample_vlm(
    model_name: str, prompts: list[list[dict[str, Any]]], max_tokens: int, *, greedy: bool
) -> list[str]:
    import torch

    from rlft_providers.local._vision import load_image, load_vlm, prompt_with_placeholders

    model, processor = load_vlm(model_name, dtype="float32")
    model.eval()
    tokenizer = processor.tokenizer
    answers = []
    for messages in prompts:
        placeholders, urls = prompt_with_placeholders(messages)
        images = [load_image(url) for _, url in urls]
        text = processor.apply_chat_template(
            placeholders, add_generation_prompt=True, tokenize=False
        )
        inputs = processor(images=images or None, text=[text], return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=not greedy,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        answers.append(str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip())
    return answers


def main() -> int:
    from rlft_providers.local._vision import ImageError

    request = json.loads(sys.stdin.read())
    try:
        answers = sample(
            request["model"],
            request["prompts"],
            int(request["max_tokens"]),
            greedy=bool(request.get("greedy", False)),
        )
    except ImageError as exc:  # one line for the caller's error, not a traceback
        print(f"an image in the prompts cannot be read: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
