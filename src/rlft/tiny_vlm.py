"""The tiny demonstration vision-language model: a tiny CLIP vision tower joined to the tiny
language model of ``rlft.tiny`` (LLaVA-style), with a processor built offline.

The local runner trains it when ``model = "rlft/tiny"`` and the rows carry images. It learns
a small visual task (naming the colour of generated images) on a CPU in a minute, and nothing
else: name a real vision-language model for real use. torch and transformers load on first
call only.

Why LLaVA: ``LlavaForConditionalGeneration`` with a ``CLIPVisionConfig`` takes any tiny sizes,
its processor has a PIL image processor (``CLIPImageProcessorPil``, no torchvision), and the
saved folder reloads with ``AutoProcessor``/``AutoModelForImageTextToText``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rlft.datasets.images import IMAGE_PART_TYPES as DATASET_IMAGE_PARTS
from rlft.tiny import corpus_from_rows, text_config, word_tokenizer

__all__ = [
    "CHAT_TEMPLATE",
    "IMAGE_PART_TYPES",
    "IMAGE_SIZE",
    "IMAGE_TOKEN",
    "build_tiny_vlm",
    "without_images",
]

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 16
"""Every image is resized and cropped to 16 x 16 pixels: four 8 x 8 patches, four tokens."""
PATCH_SIZE = 8
# Content parts that hold an image: rlft's (rlft.datasets.images), and TRL's placeholder.
IMAGE_PART_TYPES = DATASET_IMAGE_PARTS | {"image"}
# The tiny chat template, for content that is a string or a list of text and image parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : "
    "{% if m['content'] is string %}{{ m['content'] }} "
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}" + IMAGE_TOKEN + " "
    "{% elif p['type'] == 'text' %}{{ p['text'] }} {% endif %}"
    "{% endfor %}{% endif %}. {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def without_images(value: Any) -> Any:
    """``value`` with every image content part removed (data URLs are not words to learn)."""
    if isinstance(value, Mapping):
        return {k: without_images(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [
            without_images(v)
            for v in value
            if not (isinstance(v, Mapping) and v.get("type") in IMAGE_PART_TYPES)
        ]
    return value


def build_tiny_vlm(
    rows: Iterable[Mapping[str, Any]], *, folder: Path, seed: int
) -> tuple[Any, Any, int]:
    """Build, save into ``folder`` and return ``(model, processor, parameter count)``.

    The vocabulary is the rows' words (image parts left out) plus ``<image>``. The folder
    reloads offline with ``AutoModelForImageTextToText``/``AutoProcessor``.
    """
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    corpus = corpus_from_rows(without_images(dict(row)) for row in rows)
    tokenizer = word_tokenizer(corpus, extra_special_tokens=[IMAGE_TOKEN])
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",  # drop CLS: one token per patch
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    model.name_or_path = str(folder)  # PEFT records it as the base: keep reloads offline
    params = sum(p.numel() for p in model.parameters())
    return model, processor, params
