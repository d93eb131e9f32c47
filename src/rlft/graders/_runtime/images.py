"""Images in the grader runtime: data URLs, image headers, and what graders receive.

Standard library only: this module is copied into the Lambda package with the rest of the
runtime, so it reads the four formats the providers document (PNG, JPEG, GIF, WebP) from their
headers by hand instead of decoding pixels. That is enough for what graders need:

- judges get images as OpenAI-compatible ``image_url`` parts, or as Bedrock Converse image
  blocks (``converse_image``), which take raw bytes and no URLs;
- python graders get *metadata* (format, width, height, byte length, SHA-256) in place of each
  image, not megabytes of base64 (``images_for_python``). A grader whose source sets
  ``RLFT_IMAGE_BYTES = True`` also gets the image itself, base64-encoded, under ``"base64"``.

Full decoding (truncated files, decompression bombs) is the dataset loader's job, with Pillow
(``rlft.datasets.images``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BYTES_SWITCH",
    "IMAGE_PART_TYPES",
    "MIME_TYPES",
    "ImageDataError",
    "converse_image",
    "describe",
    "dimensions",
    "image_url_of",
    "images_for_python",
    "parse_data_url",
    "sniff",
    "wants_bytes",
]

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
"""The image formats rlft recognises, by the short name Bedrock Converse also uses."""

IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})
"""Content part types that hold an image (chat format, and OpenAI's grader/Responses format)."""

BYTES_SWITCH = "RLFT_IMAGE_BYTES"
"""A python grader whose source sets ``RLFT_IMAGE_BYTES = True`` gets image bytes too."""

_SWITCH = re.compile(rf"^{BYTES_SWITCH}\s*(?::\s*bool\s*)?=\s*True\b", re.MULTILINE)
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageDataError(ValueError):
    """An image that cannot be used; ``str()`` is one line saying why."""


def parse_data_url(url: str) -> tuple[str, bytes]:
    """``data:<mime>;base64,<payload>`` -> ``(mime, bytes)``.

    Raises:
        ImageDataError: Not a base64 data URL, or the payload is not valid base64.
    """
    match = _DATA_URL.match(url)
    if match is None:
        head = url[:40] + ("..." if len(url) > 40 else "")
        raise ImageDataError(f"not a base64 data URL (data:image/<format>;base64,...): {head!r}")
    payload = url[match.end() :]
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDataError("the data URL's base64 payload is malformed") from None
    if not data:
        raise ImageDataError("the data URL holds no bytes")
    return match.group(1).lower(), data


def sniff(data: bytes) -> str | None:
    """The format of ``data`` by its magic bytes: ``png``, ``jpeg``, ``gif``, ``webp`` or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def dimensions(data: bytes, fmt: str | None = None) -> tuple[int, int] | None:
    """``(width, height)`` read from the header, or ``None`` when it cannot be read."""
    fmt = fmt or sniff(data)
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if fmt == "gif":
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit width-1 and height-1
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return (width, height) if len(data) >= 30 else None
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless: 14-bit fields
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: after the start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill bytes
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            return None
        pos += 2 + length
    return None


def describe(data: bytes, *, with_bytes: bool = False) -> dict[str, Any]:
    """What a python grader gets for an image: ``{"type": "image", "format", "mime", "width",
    "height", "bytes", "sha256"}`` (width/height ``None`` when the header cannot be read), plus
    ``"base64"`` when ``with_bytes``."""
    fmt = sniff(data)
    size = dimensions(data, fmt)
    info: dict[str, Any] = {
        "type": "image",
        "format": fmt,
        "mime": MIME_TYPES.get(fmt or ""),
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if with_bytes:
        info["base64"] = base64.b64encode(data).decode("ascii")
    return info


def image_url_of(value: Any) -> str | None:
    """The URL of an image given as a URL string or as an image content part, else ``None``.

    Accepts ``"https://..."``, ``"data:image/..."``, ``{"type": "image_url", "image_url":
    {"url": ...}}`` and ``{"type": "input_image", "image_url": "..."}``.
    """
    if isinstance(value, str):
        return value if value.startswith(("data:", "https://", "http://")) else None
    if isinstance(value, Mapping) and value.get("type") in IMAGE_PART_TYPES:
        inner = value.get("image_url")
        if isinstance(inner, Mapping):
            inner = inner.get("url")
        return inner if isinstance(inner, str) else None
    return None


def converse_image(url: str) -> dict[str, Any]:
    """A Bedrock Converse image block for a data URL: ``{"image": {"format", "source":
    {"bytes"}}}``.

    Raises:
        ImageDataError: ``url`` is not a data URL (Converse takes bytes, not URLs), is malformed,
            or holds a format Converse does not take (png, jpeg, gif, webp).
    """
    if not url.startswith("data:"):
        raise ImageDataError(
            "Bedrock Converse takes image bytes, not URLs: give the judge a data URL "
            "(rlft.datasets.images.encode_image) instead of "
            f"{url.split('?', 1)[0][:60]!r}"  # no query: a signed URL's token stays out
        )
    _, data = parse_data_url(url)
    fmt = sniff(data)
    if fmt is None:
        raise ImageDataError("the image is not PNG, JPEG, GIF or WebP, the formats Converse takes")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def wants_bytes(source: str) -> bool:
    """Whether a python grader's source asks for image bytes (``RLFT_IMAGE_BYTES = True``)."""
    return BYTES_SWITCH in source and _SWITCH.search(source) is not None


def _pil_png(value: Any) -> bytes | None:
    # A PIL image (a Hugging Face Image column), duck-typed: the runtime never imports Pillow.
    if not (callable(getattr(value, "save", None)) and hasattr(value, "size")):
        return None
    if type(value).__module__.split(".")[0] != "PIL":
        return None
    buffer = io.BytesIO()
    value.save(buffer, format="PNG")
    return buffer.getvalue()


def _convert(value: Any, with_bytes: bool) -> Any:
    """``value`` with each inline image replaced by its description; the same object if none."""
    if isinstance(value, str):
        if value.startswith("data:image/"):
            try:
                return describe(parse_data_url(value)[1], with_bytes=with_bytes)
            except ImageDataError:
                return value
        return value
    if isinstance(value, Mapping):
        if value.get("type") in IMAGE_PART_TYPES:
            url = image_url_of(value)
            return _convert(url, with_bytes) if url and url.startswith("data:") else value
        return value
    if isinstance(value, list | tuple):
        converted = [_convert(v, with_bytes) for v in value]
        changed = any(a is not b for a, b in zip(converted, value, strict=True))
        return converted if changed else value
    png = _pil_png(value)
    return describe(png, with_bytes=with_bytes) if png is not None else value


def images_for_python(
    items: Sequence[Mapping[str, Any]], source: str
) -> Sequence[Mapping[str, Any]]:
    """Items as a python grader receives them: each inline image in a top-level item field
    (a data URL, an image part, a PIL image, or a list of these) replaced by ``describe(...)``.

    Items without images are returned as they are (the same objects), so text-only grading
    pays one type check per field.
    """
    with_bytes = wants_bytes(source)
    out: list[Mapping[str, Any]] | None = None
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue  # the pool refuses it, with its own message
        changed: dict[str, Any] | None = None
        for key, value in item.items():
            if isinstance(value, int | float | bool) or value is None:
                continue
            if isinstance(value, str) and not value.startswith("data:image/"):
                continue
            new = _convert(value, with_bytes)
            if new is not value:
                changed = changed if changed is not None else dict(item)
                changed[key] = new
        if changed is not None:
            out = out if out is not None else list(items)
            out[index] = changed
    return out if out is not None else items
