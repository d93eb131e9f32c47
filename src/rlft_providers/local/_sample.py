"""Sample a local model once per prompt, in a subprocess (``rlft preflight`` on ``local``).

Run as ``python -m rlft_providers.local._sample``: a JSON request on stdin
(``{"model", "prompts", "max_tokens"}``), a JSON list of completions on stdout. torch and
transformers load only here, never in the caller.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def sample(model_name: str, prompts: list[list[dict[str, Any]]], max_tokens: int) -> list[str]:
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
                do_sample=True,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        answers.append(str(tokenizer.decode(new_tokens, skip_special_tokens=True)).strip())
    return answers


def main() -> None:
    request = json.loads(sys.stdin.read())
    answers = sample(request["model"], request["prompts"], int(request["max_tokens"]))
    sys.stdout.write(json.dumps(answers))


if __name__ == "__main__":
    main()
