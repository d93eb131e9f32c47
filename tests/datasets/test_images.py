"""Images in datasets: the helpers, loading every accepted shape into one, and each backend's
limits (formats, sources, bytes, pixels, images per row), refused with the row and the field."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rlft.datasets import Dataset, DatasetRules, check_file, to_trl_rows
from rlft.datasets._checks import RowChecker
from rlft.datasets._rules import rules_problems
from rlft.datasets.images import (
    ImageError,
    decode_data_url,
    encode_image,
    image_part,
    inspect_image,
    normalize_part,
)
from rlft.exceptions import DatasetValidationError
from rlft_providers.local._facts import DATASET as LOCAL
from rlft_providers.openai._facts import DATASET as OPENAI


def picture(fmt: str = "PNG", size: tuple[int, int] = (8, 6), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def row(*parts: dict[str, Any], **item: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": "What colour is this?"}, *parts]
    return {"messages": [{"role": "user", "content": content}], "label": "red", **item}


def url_part(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


TEXT = Dataset.from_records([row()])  # a text-only validation set


def errors(report: Any) -> list[tuple[int | None, str, str | None]]:
    return [(p.row, p.code, p.field) for p in report.errors]


# --- the helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_encode_inspect_and_decode_round_trip(fmt: str, name: str) -> None:
    data = picture(fmt, (13, 7))
    url = encode_image(data)
    assert url.startswith(f"data:image/{name};base64,")
    assert decode_data_url(url) == (f"image/{name}", data)
    info = inspect_image(url)
    assert (info.format, info.width, info.height, info.bytes) == (name, 13, 7, len(data))
    assert info.sha256 == inspect_image(data).sha256 and not info.animated


def test_encode_reads_files_relative_to_a_base_and_pil_images(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(picture())
    assert decode_data_url(encode_image("a.png", base_dir=tmp_path))[1] == picture()
    url = encode_image(Image.new("RGB", (3, 2), "blue"))
    assert inspect_image(url).width == 3
    with pytest.raises(ImageError, match="does not exist"):
        encode_image("missing.png", base_dir=tmp_path)
    with pytest.raises(ImageError, match="not a PNG, JPEG, GIF or WebP"):
        encode_image(b"%PDF-1.7 not an image")


def test_an_animated_gif_is_seen_as_animated() -> None:
    info = inspect_image(animated_gif())
    assert info.format == "gif" and info.animated


def test_normalize_part_rewrites_every_accepted_shape(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(picture())
    expected = data_url(picture())
    assert normalize_part({"type": "input_image", "image_url": "https://x/a.png"}) == url_part(
        "https://x/a.png"
    )
    assert normalize_part(
        {"type": "input_image", "path": "img/a.png", "detail": "low"}, base_dir=tmp_path
    ) == url_part(expected, detail="low")
    assert normalize_part(url_part("file:img/a.png"), base_dir=tmp_path) == url_part(expected)
    assert image_part("https://x", detail="high") == url_part("https://x", detail="high")


# --- loading ------------------------------------------------------------------------------------


def test_from_jsonl_inlines_local_files_relative_to_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "red.png").write_bytes(picture())
    file = tmp_path / "data" / "train.jsonl"
    lines = [
        row({"type": "input_image", "path": "images/red.png"}),
        row({"type": "input_image", "image_url": "https://example.com/red.png", "detail": "low"}),
    ]
    file.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    ds = Dataset.from_jsonl(file)
    first, second = (example.messages[0]["content"][1] for example in ds)
    assert first == url_part(data_url(picture()))
    assert second == url_part("https://example.com/red.png", detail="low")
    # The stored row is the rewritten one: written out, it loads anywhere, without the files.
    copy = ds.to_jsonl(tmp_path / "copy.jsonl")
    assert Dataset.from_jsonl(copy) == ds
    # And the same image given inline hashes the same as given by path.
    inline = Dataset.from_records([row(url_part(data_url(picture())))])
    assert inline.content_hash == ds[:1].content_hash


def test_a_missing_image_file_is_one_line_naming_the_line_and_field(tmp_path: Path) -> None:
    file = tmp_path / "train.jsonl"
    file.write_text(json.dumps(row({"type": "input_image", "path": "nope.png"})) + "\n")
    with pytest.raises(DatasetValidationError) as info:
        Dataset.from_jsonl(file)
    (problem,) = info.value.report.errors
    assert (problem.line, problem.code, problem.field) == (
        1,
        "image-unreadable",
        "messages[0].content[1]",
    )
    assert "nope.png" in problem.message and "\n" not in str(problem)
    # check_file streams the same rewrite and reports the same problem.
    assert [p.code for p in check_file(file).errors] == ["image-unreadable"]


def test_an_image_item_field_is_rewritten_for_grader_templates(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(picture())
    ds = Dataset.from_records(
        [row(image={"type": "input_image", "path": "a.png"})], base_dir=tmp_path
    )
    assert ds[0].item["image"] == url_part(data_url(picture()))


def test_truncated_and_fake_images_are_refused_at_load() -> None:
    truncated = data_url(picture(size=(64, 64))[:60])
    fake = data_url(b"GIF89a" + b"\x00" * 4)
    records = [row(url_part(truncated)), row(url_part(fake)), row(url_part("data:image/png,xx"))]
    with pytest.raises(DatasetValidationError) as info:
        Dataset.from_records(records)
    assert [(p.row, p.code) for p in info.value.report.errors] == [
        (0, "image-unreadable"),
        (1, "image-unreadable"),
        (2, "image-unreadable"),
    ]
    assert all("\n" not in str(p) for p in info.value.report.errors)


def test_hugging_face_image_columns_fill_trl_placeholders() -> None:
    import datasets  # the hf extra, installed with the dev environment

    hf = datasets.Dataset.from_dict(
        {
            "messages": [
                [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}],
                    }
                ]
            ],
            "images": [[Image.new("RGB", (5, 4), "green")]],
            "photo": [Image.new("RGB", (2, 2), "blue")],
            "label": ["green"],
        }
    ).cast_column("photo", datasets.Image())
    ds = Dataset.from_hf(hf)
    example = ds[0]
    image = example.messages[0]["content"][0]
    assert image["type"] == "image_url" and inspect_image(image["image_url"]["url"]).width == 5
    assert "images" not in example.item  # consumed by the placeholder
    assert inspect_image(example.item["photo"]).format == "png"  # an Image column stays an item
    assert example.item["label"] == "green"


def test_to_trl_rows_keeps_image_parts() -> None:
    ds = Dataset.from_records([row(url_part(data_url(picture())))])
    (trl,) = to_trl_rows(ds)
    assert trl["prompt"][0]["content"][1]["type"] == "image_url"


# --- backend limits -----------------------------------------------------------------------------


def test_openai_takes_images_within_its_documented_limits() -> None:
    ten = [url_part(data_url(picture())) for _ in range(10)]
    ok = Dataset.from_records([row(*ten), row(url_part("https://example.com/a.png"))])
    assert ok.validate(provider="openai", validation=ok).ok
    eleven = Dataset.from_records([row(*ten, url_part(data_url(picture("JPEG"), "image/jpeg")))])
    report = eleven.validate(provider="openai", validation=ok)
    assert errors(report) == [(0, "too-many-images", "messages")]
    assert "up to 10 per row" in report.errors[0].message


def test_formats_a_backend_does_not_take_are_refused_with_the_list() -> None:
    gif = Dataset.from_records([row(url_part(data_url(picture("GIF"), "image/gif")))])
    report = gif.validate(provider="openai", validation=TEXT)
    assert errors(report) == [(0, "image-format", "messages[0].content[1].image_url")]
    assert "jpeg, png, webp" in report.errors[0].message
    assert gif.validate(provider="local").ok  # the local runner reads still GIFs
    moving = Dataset.from_records([row(url_part(data_url(animated_gif(), "image/gif")))])
    assert [c for _, c, _ in errors(moving.validate(provider="local"))] == ["image-animated"]


def test_an_oversized_image_is_refused_naming_the_limit() -> None:
    noise = Image.frombytes("RGB", (2000, 1800), bytes(range(256)) * 42188)
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=0)
    assert buffer.tell() > 10 * 1024 * 1024
    big = Dataset.from_records([row(url_part(data_url(buffer.getvalue())))])
    report = big.validate(provider="openai", validation=TEXT)
    assert [c for _, c, _ in errors(report)] == ["image-too-large"]
    assert "up to 10.0 MB" in report.errors[0].message


def test_sources_a_backend_does_not_take_are_refused_both_ways() -> None:
    url = Dataset.from_records([row(url_part("https://example.com/a.png"))])
    report = url.validate(provider="local")
    assert errors(report) == [(0, "image-url-not-accepted", "messages[0].content[1].image_url")]
    assert "inline" in report.errors[0].fix
    url_only = replace(OPENAI, image_sources=frozenset({"url"}))
    checker = RowChecker(file="t", rules=url_only)
    checker.check(row(url_part(data_url(picture()))), line=1, row=0)
    checker.check(row(url_part("ftp://x/y.png")), line=2, row=1)
    assert [p.code for p in checker.finish().errors] == ["image-data-not-accepted", "image-source"]


def test_pixel_and_byte_limits_from_rules() -> None:
    rules = replace(LOCAL, max_image_pixels=40, max_image_bytes=50)
    checker = RowChecker(file="t", rules=rules)
    checker.check(row(url_part(data_url(picture(size=(8, 6))))), line=1, row=0)
    found = {p.code: p.message for p in checker.finish().errors}
    assert set(found) == {"image-too-many-pixels", "image-too-large"}
    assert "8x6 (48 pixels)" in found["image-too-many-pixels"]


def test_a_bad_detail_is_refused() -> None:
    with pytest.raises(DatasetValidationError, match="image-detail"):
        Dataset.from_records([row(url_part("https://x/a.png", detail="ultra"))])


def test_bedrock_refuses_image_rows_naming_rows_and_backends_that_take_images() -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}], "reference_answer": "a"}
        for i in range(100)
    ]
    rows[4] = {**row(url_part(data_url(picture()))), "reference_answer": "a"}
    rows[9] = {**row(url_part("https://example.com/x.png")), "reference_answer": "a"}
    for provider in ("bedrock", "bedrock-open-weight"):
        report = Dataset.from_records(rows).validate(provider=provider)
        found = [(p.row, p.code) for p in report.errors]
        assert found == [(4, "content-not-supported"), (9, "content-not-supported")]
        problem = report.errors[0]
        assert "text only" in problem.message and "Multimodal inputs are not supported" in (
            problem.message
        )
        assert "openai" in problem.fix and "local" in problem.fix and "bedrock" not in problem.fix


def test_azure_takes_up_to_64_images_with_a_warning_citing_its_docs() -> None:
    valid = Dataset.from_records([row()])
    many = Dataset.from_records([row(*[url_part(data_url(picture()))] * 64)])
    report = many.validate(provider="azure", validation=valid)
    assert report.ok
    warning = next(p for p in report.warnings if p.code == "content-not-supported")
    assert "does not document image prompts" in warning.message
    assert "fine-tuning-vision" in warning.message
    more = Dataset.from_records([row(*[url_part(data_url(picture()))] * 65)])
    assert errors(more.validate(provider="azure", validation=valid)) == [
        (0, "too-many-images", "messages")
    ]


def test_rules_problems_check_the_image_fields() -> None:
    bad = replace(
        LOCAL,
        image_formats=frozenset({"png", "bmp"}),
        image_sources=frozenset({"ftp"}),
        max_images_per_row=0,
        max_image_bytes=-1,
        image_roles=frozenset({"user", "narrator"}),
    )
    problems = rules_problems(bad)
    assert any(p.startswith("image_formats: 'bmp'") for p in problems)
    assert any(p.startswith("image_sources: 'ftp'") for p in problems)
    assert any(p.startswith("max_images_per_row: 0") for p in problems)
    assert any(p.startswith("max_image_bytes: -1") for p in problems)
    assert any(p.startswith("image_roles: 'narrator'") for p in problems)
    empty = DatasetRules(label="x", roles=frozenset({"user"}), image_sources=frozenset())
    assert rules_problems(empty) == ['image_sources: empty, yet part_types accepts "image_url"']


def test_openai_takes_images_in_user_messages_only() -> None:
    shot = {"role": "assistant", "content": [url_part(data_url(picture()))]}
    record = row()
    record["messages"] = [*record["messages"], shot, *record["messages"]]
    data = Dataset.from_records([record])
    report = data.validate(provider="openai", validation=TEXT)
    assert errors(report) == [(0, "image-role", "messages[1].content[0].type")]
    assert '"assistant" message' in report.errors[0].message
    assert data.validate(provider="local").ok  # the local runner has no such rule


def test_local_images_must_lie_under_the_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(picture())
    (tmp_path / "data").mkdir()
    file = tmp_path / "data" / "train.jsonl"
    for path in ("../secret.png", str(tmp_path / "secret.png")):
        file.write_text(json.dumps(row({"type": "input_image", "path": path})) + "\n")
        with pytest.raises(DatasetValidationError) as info:
            Dataset.from_jsonl(file)
        (problem,) = info.value.report.errors
        assert problem.code == "image-unreadable" and "is outside" in problem.message
        # Reading from elsewhere is a choice the caller makes, not the file.
        ds = Dataset.from_jsonl(file, image_root=tmp_path)
        assert ds[0].messages[0]["content"][1] == url_part(data_url(picture()))
