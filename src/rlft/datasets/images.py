"""Images in datasets: encode, decode, inspect, and the one image part shape rows hold.

After loading, every image in a row's message content is the chat-format part

    {"type": "image_url", "image_url": {"url": "<https URL or data:image/<fmt>;base64,...>",
                                        "detail": "auto" | "low" | "high"}}   # detail optional

Loading also accepts, and rewrites to that shape (``normalize_part``):

- ``{"type": "input_image", "image_url": "<url>", "detail"?: ...}`` (OpenAI's grader and
  Responses shape);
- a local file, ``{"type": "input_image", "path": "images/a.png"}`` or
  ``{"type": "image_url", "image_url": {"url": "file:images/a.png"}}``, resolved relative to the
  dataset file (or the working directory for records) and inlined as a data URL;
- a PIL image (Hugging Face ``Image`` columns), inlined as a PNG data URL.

```python
from rlft.datasets.images import encode_image, inspect_image, image_part

url = encode_image("cat.png")                 # "data:image/png;base64,..."
info = inspect_image(url)                      # ImageInfo(format="png", width=64, ...)
part = image_part(url, detail="low")          # {"type": "image_url", "image_url": {...}}
```

Pillow reads and verifies images (``inspect_image``); the grader runtime's stdlib twin
(``rlft.graders._runtime.images``) only reads headers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlft.graders._runtime.images import (
    IMAGE_PART_TYPES,
    MIME_TYPES,
    ImageDataError,
    dimensions,
    parse_data_url,
    sniff,
)

__all__ = [
    "DETAILS",
    "IMAGE_PART_TYPES",
    "MIME_TYPES",
    "ImageError",
    "ImageInfo",
    "decode_data_url",
    "encode_image",
    "image_part",
    "image_url",
    "inspect_image",
    "is_image_part",
    "normalize_part",
]

DETAILS = ("auto", "low", "high")
"""The ``detail`` values OpenAI's image part takes."""

ImageError = ImageDataError
"""An image rlft cannot use: ``str()`` is one line saying why (a ``ValueError``)."""

# Above this many pixels Pillow refuses to decode (its decompression-bomb guard, 2 x
# Image.MAX_IMAGE_PIXELS by default); rlft refuses such images before Pillow is asked.
_PIXEL_GUARD = 2 * 89_478_485


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image is, without its pixels.

    Attributes:
        format: ``png``, ``jpeg``, ``gif`` or ``webp``.
        mime: ``image/<format>``.
        width / height: In pixels.
        bytes: The encoded size.
        sha256: Hex SHA-256 of the encoded bytes (stable: the same file, the same hash).
        animated: More than one frame (an animated GIF or WebP).
        mode: Pillow's colour mode (``RGB``, ``RGBA``, ``L``, ``P``, ...).
    """

    format: str
    mime: str
    width: int
    height: int
    bytes: int
    sha256: str
    animated: bool = False
    mode: str = ""

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:image/png;base64,...`` -> ``("image/png", b"...")``.

    Raises:
        ImageError: Not a base64 data URL, or malformed base64.
    """
    return parse_data_url(url)


def encode_image(
    image: bytes | str | os.PathLike[str] | Any, *, base_dir: str | os.PathLike[str] | None = None
) -> str:
    """An image as a ``data:image/<format>;base64,...`` URL.

    Args:
        image: Encoded bytes (PNG, JPEG, GIF or WebP), a file path, or a PIL image (saved as
            PNG; as JPEG when its mode has no PNG form, which does not happen for RGB/RGBA/L/P).
        base_dir: The directory a relative path is resolved against (default: the working
            directory).

    Raises:
        ImageError: The file cannot be read, or the bytes are not a format rlft recognises.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | os.PathLike):
        data = _read(Path(image), base_dir)
    elif type(image).__module__.split(".")[0] == "PIL":
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        raise ImageError(f"cannot encode a {type(image).__name__} as an image")
    fmt = sniff(data)
    if fmt is None:
        raise ImageError("the bytes are not a PNG, JPEG, GIF or WebP image")
    return f"data:{MIME_TYPES[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def _read(path: Path, base_dir: str | os.PathLike[str] | None) -> bytes:
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"image path {str(path)!r} is a directory, not a file") from None
    except OSError as exc:
        raise ImageError(f"cannot read image file {str(path)!r}: {exc.strerror}") from None


def inspect_image(image: bytes | str) -> ImageInfo:
    """Read an image's format, size and frames (Pillow), verifying it decodes.

    Args:
        image: Encoded bytes, or a data URL.

    Raises:
        ImageError: A malformed data URL, an unrecognised format, a truncated or corrupt
            file, or more pixels than Pillow's decompression-bomb guard allows.
    """
    data = parse_data_url(image)[1] if isinstance(image, str) else bytes(image)
    fmt = sniff(data)
    if fmt is None:
        raise ImageError("not a PNG, JPEG, GIF or WebP image (unrecognised bytes)")
    size = dimensions(data, fmt)
    if size is not None and size[0] * size[1] > _PIXEL_GUARD:
        raise ImageError(
            f"the {fmt} header claims {size[0]}x{size[1]} pixels, more than rlft decodes "
            f"({_PIXEL_GUARD:,})"
        )
    width, height, frames, mode = _pillow_read(data, fmt)
    return ImageInfo(
        format=fmt,
        mime=MIME_TYPES[fmt],
        width=width,
        height=height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        animated=frames > 1,
        mode=mode,
    )


def _pillow_read(data: bytes, fmt: str) -> tuple[int, int, int, str]:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                frames = int(getattr(opened, "n_frames", 1) or 1)
                mode = opened.mode
                opened.load()  # decode the pixels: a truncated file fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"the {fmt} image has too many pixels to decode safely") from None
    except UnidentifiedImageError:
        raise ImageError(f"the {fmt} image cannot be read (corrupt header)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        what = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ImageError(f"the {fmt} image cannot be decoded ({what})") from None
    if width < 1 or height < 1:
        raise ImageError(f"the {fmt} image is {width}x{height} pixels")
    return width, height, frames, mode


def image_part(url: str, *, detail: str | None = None) -> dict[str, Any]:
    """The canonical image part: ``{"type": "image_url", "image_url": {"url", "detail"?}}``."""
    inner: dict[str, Any] = {"url": url}
    if detail is not None:
        inner["detail"] = detail
    return {"type": "image_url", "image_url": inner}


def is_image_part(part: Any) -> bool:
    """Whether ``part`` is a content part that holds an image (any accepted shape)."""
    return isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES


def image_url(part: Mapping[str, Any]) -> str | None:
    """The URL of a canonical image part, or ``None`` when it has none."""
    inner = part.get("image_url")
    url = inner.get("url") if isinstance(inner, Mapping) else None
    return url if isinstance(url, str) else None


def normalize_part(
    part: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> dict[str, Any]:
    """Rewrite one image part to the canonical ``image_url`` shape.

    ``input_image`` parts become ``image_url`` parts; local files (``"path"`` or a ``file:``
    URL) are read and inlined as data URLs. Parts already canonical come back equal.

    Args:
        part: An image part (``is_image_part(part)``).
        base_dir: Where relative paths are resolved (the dataset file's directory).
        root: When given, local files must lie inside this folder (after resolving ``..`` and
            symlinks), so a dataset cannot make rlft read images from anywhere else.
        check_files: Read local files (``False`` leaves them for a later pass).

    Raises:
        ImageError: A local file that cannot be read or is not an image, or a part without a
            URL or path (the message says which key is missing).
    """
    detail = part.get("detail")
    inner = part.get("image_url")
    if isinstance(inner, Mapping):
        detail = inner.get("detail", detail)
        url: Any = inner.get("url")
    else:
        url = inner
    path = part.get("path")
    if isinstance(path, str | os.PathLike) and path:
        url = f"file:{os.fspath(path)}"
    if not isinstance(url, str) or not url:
        raise ImageError(
            'an image part needs "image_url": {"url": "https://... or data:image/..."} '
            '(or "path": "a/local/file.png")'
        )
    if url.startswith("file:") and check_files:
        target = url[len("file:") :]
        if target.startswith("//"):  # file:///abs/path
            target = target[2:]
        file = Path(target)
        if not file.is_absolute() and base_dir is not None:
            file = Path(base_dir) / file
        if root is not None and not _inside(file, Path(root)):
            raise ImageError(
                f"image path {target!r} is outside {str(root)!r}, the folder images are read "
                "from (keep images under the dataset's folder, or pass image_root=)"
            )
        url = encode_image(file)
    return image_part(url, detail=detail if isinstance(detail, str) else None)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False
