"""Images for the local runner's vision-language path: read them, render rows for TRL, load VLMs.

Imported by the worker and the sampler only (Pillow loads here; torch and transformers load in
the functions that need them). A row's image parts hold data URLs or https URLs (the dataset
contract); TRL's ``GRPOTrainer`` wants each prompt's images as PIL images in an ``images``
column, with ``{"type": "image"}`` placeholders where they sit in the messages.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rlft.datasets.images import ImageError as DatasetImageError
from rlft.datasets.images import decode_data_url
from rlft.tiny_vlm import IMAGE_PART_TYPES

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_IMAGE_BYTES",
    "ImageError",
    "ImageRowError",
    "image_url_of",
    "is_vlm_folder",
    "load_image",
    "load_vlm",
    "prompt_with_placeholders",
    "read_image",
    "restore_weights",
    "trainer_dataset",
    "vision_rows",
]

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's per-image limit; a bigger one is a mistake here
FETCH_TIMEOUT = 30.0


class ImageError(Exception):
    """An image that cannot be read, with the reason and the fix in the message."""


class ImageRowError(Exception):
    """Rows whose images cannot be used: one line naming the row, the field and the fix.

    ``code``: ``bad_image`` (an image cannot be read) or ``mixed_images`` (rows without images
    beside rows with them).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def image_url_of(part: Mapping[str, Any]) -> str:
    """The URL (https or data) an image content part holds, in any of the accepted shapes.

    ``{"type": "image_url", "image_url": {"url": ...}}`` (rlft's chat format),
    ``{"type": "input_image", "image_url": ...}`` (the Responses API) and
    ``{"type": "image", "image": ...}`` (TRL's, with a URL).

    Raises:
        ImageError: The part holds no URL string.
    """
    value: Any = part.get("image_url") if part.get("type") != "image" else None
    if isinstance(value, Mapping):
        value = value.get("url")
    if value is None:
        value = part.get("image", part.get("url"))
    if not isinstance(value, str) or not value:
        raise ImageError(f'the {part.get("type")!r} part holds no URL (write {{"url": "..."}})')
    return value


def _describe(url: str) -> str:
    """A URL for an error message: no query string (signed URLs carry their secret there)."""
    if url.startswith(("https://", "http://")):
        parts = urlsplit(url)
        url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        return url[:80] + "..." if len(url) > 80 else url
    return url[:40] + "..." if len(url) > 40 else url


def load_image(url: str, *, get: Callable[[str], bytes] | None = None) -> Any:
    """Decode a data URL or fetch an https URL; return an RGB ``PIL.Image``.

    Args:
        url: ``data:image/<format>;base64,...`` or ``https://...``.
        get: Fetches an https URL's bytes (default: ``httpx`` with a timeout and size limit).

    Raises:
        ImageError: Not a data or https URL, not base64, not an image Pillow reads, too big, or
            the fetch failed.
    """
    return _decode(*_read(url, get))


def read_image(url: str, *, get: Callable[[str], bytes] | None = None) -> bytes:
    """The image at ``url`` as encoded bytes Pillow has read in full: RGB images as they came,
    others converted to RGB and saved as PNG (every processor takes RGB).

    Raises:
        ImageError: As ``load_image``.
    """
    data, where = _read(url, get)
    image = _decode(data, where, convert=False)
    if image.mode == "RGB":
        return data
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _read(url: str, get: Callable[[str], bytes] | None) -> tuple[bytes, str]:
    if url.startswith("data:"):
        try:
            mime, data = decode_data_url(url)
        except DatasetImageError as exc:
            raise ImageError(str(exc)) from None
        if not mime.startswith("image/"):
            raise ImageError(f"the data URL holds {mime}, not an image (data:image/png;base64,...)")
        where = f"the {mime} data URL"
    elif url.startswith(("https://", "http://")):
        data = (get or _fetch)(url)
        where = _describe(url)
    else:
        raise ImageError(f"{_describe(url)!r} is neither a data URL nor an https URL")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{where} is {len(data):,} bytes, over {MAX_IMAGE_BYTES:,}")
    return data, where


def _decode(data: bytes, where: str, *, convert: bool = True) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(
            f"{where} is not an image Pillow can read ({problem}); use PNG, JPEG, GIF or WebP"
        ) from None
    return image.convert("RGB") if convert else image


def _fetch(url: str) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ImageError(f"fetching {_describe(url)} gave HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise ImageError(f"{_describe(url)} is over {MAX_IMAGE_BYTES:,} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        problem = str(exc).replace(url, _describe(url))  # no query string in the message
        raise ImageError(
            f"could not fetch {_describe(url)} ({type(exc).__name__}: {problem}); the worker "
            "needs network access to it, or embed the image as a data URL"
        ) from None
    return b"".join(chunks)


def prompt_with_placeholders(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Messages with content as lists of parts, each image a ``{"type": "image"}`` placeholder.

    Returns the messages and, in the order they appear (TRL fills placeholders in that order),
    each image's ``(field, url)``, the field named as ``messages[0].content[1]``. Every content
    becomes a list, so all rows have one Arrow type.

    Raises:
        ImageError: An image part holds no URL (the message names its field).
    """
    urls: list[tuple[str, str]] = []
    out: list[dict[str, Any]] = []
    for m, message in enumerate(messages):
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        elif isinstance(content, list):
            for p, part in enumerate(content):
                field = f"messages[{m}].content[{p}]"
                if isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES:
                    try:
                        urls.append((field, image_url_of(part)))
                    except ImageError as exc:
                        raise ImageError(f"{field}: {exc}") from None
                    parts.append({"type": "image"})
                elif isinstance(part, Mapping) and part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
        out.append({"role": message.get("role"), "content": parts})
    return out, urls


def vision_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    role: str,
    item_column: str,
    get: Callable[[str], bytes] | None = None,
) -> list[dict[str, Any]]:
    """TRL rows (``{"prompt": messages, **item}``) as ``{"prompt", "images", <item_column>}``.

    Every image is read now, before the model loads, so a bad one fails the job at once. The
    same URL is read once. Images are kept encoded (``{"bytes", "path"}``, a ``datasets.Image``
    value; see ``trainer_dataset``), so a large dataset is not held decoded in memory.

    Raises:
        ImageRowError: One line naming the first row with an image that cannot be read (rows
            count from 1, as ``rlft validate`` does), its field, the reason, and how many other
            rows have such an image; or the rows without any image (TRL cannot mix them in).
    """
    cache: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    first: str | None = None
    bad = 0
    without: list[int] = []
    for number, row in enumerate(rows, start=1):
        images: list[Any] = []
        try:
            messages, urls = prompt_with_placeholders(row["prompt"])
            if not urls:
                without.append(number)
            for field, url in urls:
                if url not in cache:
                    try:
                        cache[url] = {"bytes": read_image(url, get=get), "path": None}
                    except ImageError as exc:
                        raise ImageError(f"{field}: {exc}") from None
                images.append(cache[url])
        except ImageError as exc:
            bad += 1
            first = first or f"{role} row {number}, {exc}"
            continue
        item = {k: v for k, v in row.items() if k != "prompt"}
        out.append({"prompt": messages, "images": images, item_column: json.dumps(item)})
    if first is not None:
        more = f" (and {bad - 1} more row(s) with unreadable images)" if bad > 1 else ""
        fix = "; fix the image or drop the row, then run the job again"
        raise ImageRowError(first + more + fix, code="bad_image")
    if without:
        listed = ", ".join(str(n) for n in without[:5]) + (", ..." if len(without) > 5 else "")
        raise ImageRowError(
            f"{role} row(s) {listed} ({len(without)} in all) have no image while other rows "
            "do: TRL cannot batch text-only prompts with image prompts (transformers' "
            "processor refuses a prompt without images); give every row an image, or train "
            "the text-only rows as a separate job",
            code="mixed_images",
        )
    return out


def trainer_dataset(rows: list[dict[str, Any]]) -> Any:
    """``vision_rows`` as a Hugging Face dataset whose ``images`` column decodes to PIL images
    when TRL reads a row."""
    from datasets import Dataset, Image, List

    return Dataset.from_list(rows).cast_column("images", List(Image()))


def is_vlm_folder(path: str | Path) -> bool:
    """True when a model folder holds an image processor (a vision-language checkpoint)."""
    folder = Path(path)
    for name in ("preprocessor_config.json", "processor_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "image_processor" in data or "image_processor_type" in data:
            return True
    return False


def load_vlm(name: str, *, dtype: str) -> tuple[Any, Any]:
    """``(model, processor)`` of a Hugging Face vision-language model, padding on the left.

    Raises:
        OSError: Not a local folder and not in the cache (offline).
        ValueError: Its config is not a vision-language model's (no
            ``AutoModelForImageTextToText`` class) or it has no processor.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor, ProcessorMixin

    processor = AutoProcessor.from_pretrained(name)  # type: ignore[no-untyped-call]
    if not isinstance(processor, ProcessorMixin):  # a tokenizer alone: a text-only model
        raise ValueError(f"it has no image processor ({type(processor).__name__})")
    processor.tokenizer.padding_side = "left"  # TRL generates from left-padded prompts
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype)
    return model, processor


def _checkpoint_keys(folder: Path) -> set[str] | None:
    """The tensor names a checkpoint's safetensors hold (``None``: no full-model weights)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    single = folder / "model.safetensors"
    if not single.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as handle:
        return set(handle.keys())


def restore_weights(model: Any, checkpoint: str | Path) -> bool:
    """Load a checkpoint's weights into ``model`` the way ``from_pretrained`` maps their names.

    Why: ``save_pretrained`` writes vision-language models such as LLaVA in their original
    key format (``language_model.model.*``), and transformers 5.24's ``Trainer`` resumes by
    loading that file as is, non-strict: every key misses and training silently restarts from
    the base weights. ``from_pretrained`` applies the key mapping. Returns ``False`` (nothing
    done) when the names already match the model's, or the checkpoint holds no full weights.
    """
    keys = _checkpoint_keys(Path(checkpoint))
    if keys is None or keys == set(model.state_dict()):
        return False
    from transformers import AutoModelForImageTextToText

    dtype = next(model.parameters()).dtype
    saved = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype)
    model.load_state_dict(saved.state_dict())
    return True
