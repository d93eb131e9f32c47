"""Image checks for ``RowChecker``: rewrite image parts to one shape, then check each image
against the generic rules (readable, a known format) and the backend's limits (sources, formats,
bytes, pixels, images per row). Every problem names the row, the field and the limit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlft.datasets._rules import DatasetRules
from rlft.datasets.images import (
    DETAILS,
    ImageError,
    ImageInfo,
    image_url,
    inspect_image,
    is_image_part,
    normalize_part,
)

__all__ = ["ImageChecks"]

_INLINE_FIX = (
    'inline the image: {"type": "input_image", "path": "file.png"} in the row, or '
    "rlft.datasets.images.encode_image(path_or_bytes) for a data URL"
)
_CACHE: dict[bytes, ImageInfo | str] = {}  # sha256 of a data URL -> what inspecting it gave
_CACHE_SIZE = 4096


def _inspect(url: str) -> ImageInfo | str:
    """``inspect_image`` (an ``ImageInfo``, or the one-line error), cached: a dataset is
    checked at load and again by ``validate``, and Pillow decodes every pixel."""
    key = hashlib.sha256(url.encode("utf-8", "surrogatepass")).digest()
    found = _CACHE.get(key)
    if found is None:
        try:
            found = inspect_image(url)
        except ImageError as exc:
            found = str(exc)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = found
    return found


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _image_backends() -> str:
    """The installed backends whose rules take images, for the fix of a text-only one."""
    from rlft._plugins import find_provider, known_providers

    names = []
    for name in known_providers():
        spec = find_provider(name)
        rules = spec.dataset if spec is not None else None
        if rules is not None and "image_url" in rules.part_types:
            names.append(name)
    return ", ".join(names) or "a backend that takes images"


class ImageChecks:
    """The image half of ``RowChecker`` (mixed in; it supplies ``rules`` and ``_report``)."""

    rules: DatasetRules | None
    base_dir: Path | None
    image_root: Path | None
    _report: Callable[..., None]
    _row_images: int
    _role: str | None

    def _normalize_images(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with every image part in the canonical shape (the same object if none
        changed). Parts that cannot be rewritten stay as they are, reported once here."""
        messages = row.get("messages")
        changed = False
        if isinstance(messages, list):
            new_messages = list(messages)
            for index, message in enumerate(messages):
                content = message.get("content") if isinstance(message, dict) else None
                if not isinstance(content, list):
                    continue
                parts = [
                    self._normalized(f"messages[{index}].content[{i}]", part)
                    for i, part in enumerate(content)
                ]
                if any(a is not b for a, b in zip(parts, content, strict=True)):
                    new_messages[index] = {**message, "content": parts}
                    changed = True
        items: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("messages", "tools"):
                continue
            if is_image_part(value):  # an image item field, for {{ item.<key> }} in judges
                new = self._normalized(f"item.{key}", value)
                if new is not value:
                    items[key] = new
        if not changed and not items:
            return row
        out = dict(row)
        if changed:
            out["messages"] = new_messages
        out.update(items)
        return out

    def _normalized(self, where: str, part: Any) -> Any:
        if not is_image_part(part) or _canonical(part):
            return part
        try:
            return normalize_part(part, base_dir=self.base_dir, root=self.image_root)
        except ImageError as exc:
            self._report(
                "error",
                "image-unreadable",
                f"{where}: {exc}",
                "point the part at a readable PNG, JPEG, GIF or WebP file, or an image URL",
                field=where,
            )
            return part

    def _alternatives(self) -> str:
        found: str | None = getattr(self, "_image_alternatives", None)
        if found is None:  # once per checker: the registry does not change mid-file
            found = self._image_alternatives = _image_backends()
        return found

    def _check_image(self, where: str, part: dict[str, Any]) -> None:
        """Check one ``image_url`` part (already canonical)."""
        self._row_images += 1
        rules = self.rules
        url = image_url(part)
        if url is None:
            self._report(
                "error",
                "image-part",
                f'{where} has no "image_url": {{"url": ...}}',
                'write an image part as {"type": "image_url", "image_url": {"url": "..."}}',
                field=f"{where}.image_url",
            )
            return
        detail = part["image_url"].get("detail")
        if detail is not None and detail not in DETAILS:
            self._report(
                "error",
                "image-detail",
                f"{where}.image_url.detail is {detail!r}",
                f"use one of {', '.join(DETAILS)}, or leave detail out",
                field=f"{where}.image_url.detail",
            )
        if rules is not None and "image_url" not in rules.part_types:
            self._report(
                "error",
                "content-not-supported",
                f"{rules.label} takes text only, and the row holds an image"
                + (f" ({rules.sources['images']})" if "images" in rules.sources else ""),
                f"train on images with a backend that takes them ({self._alternatives()}), or "
                "remove the image parts",
                field=f"{where}.type",
            )
            return
        if rules is not None and "image_url" in rules.part_warnings:
            self._report(
                "warning",
                "content-not-supported",
                f"{rules.label} does not document image prompts for RFT"
                + (f" ({rules.sources['images']})" if "images" in rules.sources else ""),
                "prefer a backend that documents images, or check that the service takes them",
                field=f"{where}.type",
            )
        role = self._role
        if rules is not None and role is not None and role not in rules.image_roles:
            self._report(
                "error",
                "image-role",
                f'{where} is an image in a "{role}" message; {rules.label} takes images in '
                f"{', '.join(sorted(rules.image_roles))} messages only",
                "move the image into the user message it illustrates",
                field=f"{where}.type",
            )
        if url.startswith("file:"):
            return  # a local file that could not be read: reported when it was loaded
        if url.startswith("data:"):
            self._check_inline(where, url)
        elif url.startswith(("https://", "http://")):
            if rules is not None and "url" not in rules.image_sources:
                self._problem(
                    f"{where} is an image URL; {rules.label} takes images inline only (data URLs)",
                    _INLINE_FIX,
                    where,
                    code="image-url-not-accepted",
                )
        elif rules is not None:  # generic loading leaves odd URLs to the backend's check
            self._problem(
                f"{where}.image_url.url is neither an http(s) URL nor a data:image URL "
                f"({url.split('?', 1)[0][:40]!r})",
                'use "https://..." or "data:image/png;base64,...", or "path" for a local file',
                where,
                code="image-source",
            )

    def _check_inline(self, where: str, url: str) -> None:
        rules = self.rules
        if rules is not None and "data" not in rules.image_sources:
            self._problem(
                f"{where} is an inline image (data URL); {rules.label} takes image URLs only",
                "host the image at an https URL and put that URL in the part",
                where,
                code="image-data-not-accepted",
            )
            return
        info = _inspect(url)
        if isinstance(info, str):
            self._problem(
                f"{where}: {info}",
                "re-encode the image as PNG or JPEG (rlft.datasets.images.encode_image)",
                where,
                code="image-unreadable",
            )
            return
        if rules is None:
            return
        label = rules.label
        if info.format not in rules.image_formats:
            allowed = ", ".join(sorted(rules.image_formats))
            self._problem(
                f"{where} is a {info.format.upper()} image; {label} takes {allowed}",
                f"convert the image to {sorted(rules.image_formats)[0].upper()}",
                where,
                code="image-format",
            )
        elif info.animated:
            self._problem(
                f"{where} is an animated {info.format.upper()}; {label} takes still images",
                "use one frame (a still PNG or JPEG)",
                where,
                code="image-animated",
            )
        if rules.max_image_bytes is not None and info.bytes > rules.max_image_bytes:
            self._problem(
                f"{where} is {_megabytes(info.bytes)}; {label} takes images up to "
                f"{_megabytes(rules.max_image_bytes)}",
                "downscale or re-compress the image (JPEG), or host it at a URL",
                where,
                code="image-too-large",
            )
        if rules.max_image_pixels is not None and info.pixels > rules.max_image_pixels:
            self._problem(
                f"{where} is {info.width}x{info.height} ({info.pixels:,} pixels); {label} "
                f"takes up to {rules.max_image_pixels:,} pixels",
                "downscale the image",
                where,
                code="image-too-many-pixels",
            )

    def _check_image_count(self) -> None:
        rules = self.rules
        limit = rules.max_images_per_row if rules is not None else None
        if rules is not None and limit is not None and self._row_images > limit:
            self._report(
                "error",
                "too-many-images",
                f"the row holds {self._row_images} images; {rules.label} takes up to {limit} "
                "per row",
                f"split the row, or keep at most {limit} images",
                field="messages",
            )

    def _problem(self, message: str, fix: str, where: str, *, code: str) -> None:
        self._report("error", code, message, fix, field=f"{where}.image_url")


def _canonical(part: dict[str, Any]) -> bool:
    inner = part.get("image_url")
    return (
        part.get("type") == "image_url"
        and "path" not in part
        and isinstance(inner, dict)
        and isinstance(inner.get("url"), str)
        and not inner["url"].startswith("file:")
    )
