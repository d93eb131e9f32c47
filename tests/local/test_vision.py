"""The local runner's vision-language path, without training: the plan's choice, the tiny VLM,
reading images into TRL rows, bad images, and the vision example's files."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import respx
from PIL import Image
from tests.local.conftest import make_provider

import rlft
from rlft._models import Hyperparameters
from rlft.datasets import Dataset, to_trl_rows
from rlft.tiny_vlm import IMAGE_TOKEN, build_tiny_vlm, without_images
from rlft_providers.local._plan import ImageShape, image_shape, model_kind, plan_training
from rlft_providers.local._rewards import ITEM_COLUMN
from rlft_providers.local._vision import (
    MAX_IMAGE_BYTES,
    ImageError,
    ImageRowError,
    is_vlm_folder,
    load_image,
    read_image,
    restore_weights,
    trainer_dataset,
    vision_rows,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the hub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vision"


def make_data() -> ModuleType:
    """examples/vision/make_data.py, imported by path (examples are not a package)."""
    spec = importlib.util.spec_from_file_location("vision_make_data", EXAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_url(colour: tuple[int, int, int], size: int = 8, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=fmt)
    mime = "png" if fmt == "PNG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def trl_row(*parts: dict[str, Any], colour: str = "red") -> dict[str, Any]:
    return {"prompt": [{"role": "user", "content": list(parts)}], "colour": colour}


TEXT = {"type": "text", "text": "what colour is this image ?"}


def first_image_url(row: dict[str, Any]) -> str:
    return str(row["messages"][0]["content"][0]["image_url"]["url"])


# --- the plan picks the vision-language path -------------------------------------------------


def test_image_shape_counts_image_parts_in_every_accepted_shape() -> None:
    prompts = [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "no image"}],
        [{"role": "user", "content": [image_part("data:x"), TEXT]}],
        [
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://a/b.png"}]},
            {"role": "user", "content": [{"type": "image", "image": "https://a/c.png"}, TEXT]},
        ],
    ]
    assert image_shape(prompts) == ImageShape(rows=2, images=3, most=2)
    assert image_shape(prompts[:1]) is None  # text rows: the text path


def test_rows_with_images_pick_the_vlm_path_for_tiny_and_named_models() -> None:
    shape = ImageShape(rows=1, images=1, most=1)
    assert model_kind(None, shape) == "tiny-vlm"
    assert model_kind("rlft/tiny", shape) == "tiny-vlm"
    assert model_kind("HuggingFaceTB/SmolVLM-256M-Instruct", shape) == "vlm"
    assert model_kind("rlft/tiny", None) == "tiny"
    assert model_kind("org/text-model", None) == "causal-lm"
    hp = Hyperparameters(max_steps=10)
    assert plan_training(hp, model=None, train_rows=8, has_validation=False, images=shape).kind == (
        "tiny-vlm"
    )
    named = plan_training(hp, model="org/vlm", train_rows=8, has_validation=False, images=shape)
    assert named.kind == "vlm"
    assert plan_training(hp, model=None, train_rows=8, has_validation=False).kind == "tiny"


def test_the_example_job_loads_validates_and_plans_the_tiny_vlm(tmp_path: Path) -> None:
    spec = rlft.load_job_file(EXAMPLE / "job.toml")  # data, grader and settings all load
    assert spec.model == "rlft/tiny" and len(spec.train) == 480
    assert spec.validation is not None and len(spec.validation) == 48
    report = spec.train.validate(provider="local", grader=spec.grader, validation=spec.validation)
    assert not report.errors, report.summary()
    shape = image_shape(e.messages for e in spec.train)
    assert shape == ImageShape(rows=480, images=480, most=1)
    plan = plan_training(
        spec.hyperparameters,
        model=spec.model,
        train_rows=len(spec.train),
        has_validation=True,
        images=shape,
    )
    assert plan.kind == "tiny-vlm"
    assert plan.grpo["max_completion_length"] == 1 and plan.grpo["max_steps"] == 200
    make_provider(tmp_path).check_spec(spec)  # what `rlft run` checks before uploading
    from rlft_providers.local._provider import _plan

    assert _plan(spec).kind == "tiny-vlm"  # the job's plan, made at create time, knows it too
    assert json.loads((EXAMPLE / "grader.json").read_text())["reference"] == "{{ item.colour }}"


def test_the_shipped_example_data_is_what_make_data_writes() -> None:
    module = make_data()
    for name, count, seed in (("train", 480, 1), ("valid", 48, 2)):
        lines = (EXAMPLE / "data" / f"{name}.jsonl").read_text().splitlines()
        shipped = [json.loads(line) for line in lines]
        fresh = module.rows(count, seed)
        assert [r["colour"] for r in shipped] == [r["colour"] for r in fresh]
        # The same pixels: PNG bytes may differ with zlib's version, so compare decoded images.
        for old, new in zip(shipped[:20], fresh[:20], strict=True):
            before, after = (load_image(first_image_url(r)) for r in (old, new))
            assert before.tobytes() == after.tobytes()
    colours = {r["colour"] for r in module.rows(100, 3)}
    assert colours == set(module.COLOURS)


# --- the tiny VLM ---------------------------------------------------------------------------


def test_tiny_vlm_builds_and_reloads_offline_with_the_auto_classes(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    rows = to_trl_rows(Dataset.from_records(make_data().rows(12, seed=5)))
    model, processor, params = build_tiny_vlm(rows, folder=tmp_path / "vlm", seed=1)
    assert 50_000 < params < 200_000
    words = processor.tokenizer.get_vocab()
    assert {"what", "colour", "red", "green", "blue", "yellow", IMAGE_TOKEN} <= set(words)
    assert len(words) < 40  # the data URLs did not become words
    assert is_vlm_folder(tmp_path / "vlm")

    reloaded = AutoProcessor.from_pretrained(tmp_path / "vlm")
    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "vlm")
    assert type(reloaded).__name__ == "LlavaProcessor"
    assert type(again).__name__ == "LlavaForConditionalGeneration"
    for name, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name

    messages = [{"role": "user", "content": [{"type": "image"}, TEXT]}]
    text = reloaded.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == f"user : {IMAGE_TOKEN} what colour is this image ? . assistant :"
    picture = Image.new("RGB", (40, 30), (200, 20, 20))  # any size: resized to 16 x 16
    inputs = reloaded(images=[picture], text=[text], return_tensors="pt")
    image_id = reloaded.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert int((inputs["input_ids"] == image_id).sum()) == 4  # four 8 x 8 patches
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 16, 16)
    with torch.no_grad():
        out = again.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]  # it answers


def test_without_images_drops_image_parts_only() -> None:
    row = trl_row(image_part("data:image/png;base64,AAAA"), TEXT)
    assert without_images(row) == trl_row(TEXT)


# --- reading images into TRL rows -------------------------------------------------------------


def test_vision_rows_put_placeholders_where_the_images_were_and_decode_them() -> None:
    red, blue = png_url((250, 0, 0)), png_url((0, 0, 250), fmt="JPEG")
    rows = [
        {
            "prompt": [
                {"role": "system", "content": "answer with one word"},
                {"role": "user", "content": [TEXT, image_part(red), image_part(blue)]},
            ],
            "colour": "red",
        }
    ]
    [out] = vision_rows(rows, role="training", item_column=ITEM_COLUMN)
    [row] = trainer_dataset([out])  # what TRL reads: the images column decodes to PIL images
    assert out["prompt"] == [
        {"role": "system", "content": [{"type": "text", "text": "answer with one word"}]},
        {"role": "user", "content": [TEXT, {"type": "image"}, {"type": "image"}]},
    ]
    assert [img.mode for img in row["images"]] == ["RGB", "RGB"]
    assert row["images"][0].getpixel((0, 0)) == (250, 0, 0)
    assert row["images"][1].getpixel((0, 0))[2] > 200  # JPEG: close to the blue it was
    assert json.loads(row[ITEM_COLUMN]) == {"colour": "red"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("data:image/png;base64,%%%notbase64", "the data URL's base64 payload is malformed"),
        ("data:image/png;base64," + base64.b64encode(b"plain text").decode(), "Pillow can"),
        (
            "data:image/svg+xml;base64," + base64.b64encode(b"<svg></svg>").decode(),
            "image/svg+xml data URL is not an image Pillow can read",
        ),
        ("data:text/plain;base64,aGVsbG8=", "the data URL holds text/plain, not an image"),
        ("data:image/png,rawbytes", "not a base64 data URL"),
        ("file:///tmp/x.png", "neither a data URL nor an https URL"),
    ],
)
def test_bad_images_fail_with_one_line_naming_the_row_and_field(url: str, reason: str) -> None:
    good = trl_row(image_part(png_url((0, 200, 0))), TEXT)
    bad = trl_row(TEXT, image_part(url))
    with pytest.raises(ImageRowError) as caught:
        vision_rows([good, bad, bad], role="training", item_column=ITEM_COLUMN)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("training row 2, messages[0].content[1]: ")
    assert reason in message
    assert message.endswith(
        "(and 1 more row(s) with unreadable images); fix the image or drop the row, "
        "then run the job again"
    )
    assert caught.value.code == "bad_image"


def test_an_image_part_without_a_url_names_its_field() -> None:
    row = trl_row(TEXT, {"type": "image_url", "image_url": {}})
    with pytest.raises(ImageRowError, match=r"^validation row 1, messages\[0\]\.content\[1\]: "):
        vision_rows([row], role="validation", item_column=ITEM_COLUMN)


def test_an_oversized_image_is_refused_with_the_limit() -> None:
    with pytest.raises(ImageError, match=f"over {MAX_IMAGE_BYTES:,}"):
        load_image("https://images.test/big.png", get=lambda url: b"\0" * (MAX_IMAGE_BYTES + 1))


@respx.mock
def test_https_images_are_fetched_once_per_url() -> None:
    body = base64.b64decode(png_url((10, 20, 30)).split(",", 1)[1])
    route = respx.get("https://images.test/a.png").mock(
        return_value=httpx.Response(200, content=body)
    )
    rows = [trl_row(image_part("https://images.test/a.png"), TEXT) for _ in range(3)]
    out = vision_rows(rows, role="training", item_column=ITEM_COLUMN)
    assert route.call_count == 1
    assert [r["images"][0].getpixel((0, 0)) for r in trainer_dataset(out)] == [(10, 20, 30)] * 3


@respx.mock
def test_an_https_image_that_cannot_be_fetched_is_a_clear_row_error() -> None:
    respx.get("https://images.test/gone.png").mock(return_value=httpx.Response(404))
    respx.get("https://images.test/down.png").mock(side_effect=httpx.ConnectError("refused"))
    rows = [
        trl_row(image_part("https://images.test/gone.png")),
        trl_row(image_part("https://images.test/down.png")),
    ]
    with pytest.raises(ImageRowError) as caught:
        vision_rows(rows, role="training", item_column=ITEM_COLUMN)
    message = str(caught.value)
    assert message.startswith("training row 1, messages[0].content[0]: fetching")
    assert "HTTP 404" in message and "1 more row(s)" in message
    with pytest.raises(ImageError, match="could not fetch .*ConnectError.*data URL"):
        load_image("https://images.test/down.png")


def test_rows_without_images_beside_rows_with_them_are_refused_by_number() -> None:
    # TRL 1.16 hands transformers' processor None for a prompt without images in a batch with
    # images, which raises a TypeError mid-training; the worker refuses such data up front.
    with_image = trl_row(image_part(png_url((0, 200, 0))), TEXT)
    text_only = {"prompt": [{"role": "user", "content": "say red"}], "colour": "red"}
    rows = [with_image, text_only, with_image, *[text_only] * 6]
    with pytest.raises(ImageRowError) as caught:
        vision_rows(rows, role="training", item_column=ITEM_COLUMN)
    message = str(caught.value)
    assert caught.value.code == "mixed_images" and "\n" not in message
    assert message.startswith("training row(s) 2, 4, 5, 6, 7, ... (7 in all) have no image")
    assert "give every row an image" in message


def test_a_signed_url_keeps_its_secret_out_of_the_error() -> None:
    def refuse(url: str) -> bytes:
        return b"not an image"

    url = "https://user:pw@bucket.test/cat.png?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA1"
    with pytest.raises(ImageError) as caught:
        load_image(url, get=refuse)
    message = str(caught.value)
    assert message.startswith("https://bucket.test/cat.png is not an image Pillow can read")
    assert "s3cr3t" not in message and "AKIA1" not in message and "pw" not in message


def test_images_are_kept_encoded_and_non_rgb_ones_become_rgb_pngs() -> None:
    rgb = png_url((1, 2, 3))
    assert read_image(rgb) == base64.b64decode(rgb.split(",", 1)[1])  # as it came: no re-encode
    for mode, colour in (("RGBA", (9, 8, 7, 128)), ("L", 77), ("P", 5)):
        buffer = io.BytesIO()
        Image.new(mode, (4, 4), colour).save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        stored = Image.open(io.BytesIO(read_image(url)))
        assert (stored.format, stored.mode) == ("PNG", "RGB"), mode


def test_restore_weights_loads_a_vlm_checkpoint_whose_keys_the_trainer_would_miss(
    tmp_path: Path,
) -> None:
    import torch
    from safetensors import safe_open

    rows = to_trl_rows(Dataset.from_records(make_data().rows(4, seed=5)))
    model, _, _ = build_tiny_vlm(rows, folder=tmp_path / "base", seed=1)
    trained, _, _ = build_tiny_vlm(rows, folder=tmp_path / "other", seed=2)  # other weights
    trained.save_pretrained(tmp_path / "checkpoint-7")
    with safe_open(str(tmp_path / "checkpoint-7" / "model.safetensors"), framework="pt") as f:
        saved = set(f.keys())
    # What the Trainer's resume meets: the file's names are not the model's (so it loads none).
    assert saved.isdisjoint(model.state_dict())
    assert restore_weights(model, tmp_path / "checkpoint-7") is True
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert restore_weights(model, tmp_path / "nothing-here") is False  # an adapter, say
