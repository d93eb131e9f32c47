"""Fuzzing the image loader: malformed data URLs, truncated files and headers that claim huge
sizes end in one clean line (an ``ImageError``, or a ``DatasetValidationError`` whose problems
are one line each), never a traceback, a hang or a decompression bomb."""

from __future__ import annotations

import base64
import io
import struct
import time
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rlft.datasets import Dataset
from rlft.datasets.images import ImageError, inspect_image
from rlft.exceptions import DatasetValidationError
from rlft.graders._runtime.images import describe, dimensions, images_for_python

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _png(size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR (with a valid CRC) claims ``width x height``, and one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = b"IDAT" + zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(body) - 4)
        + body
        + struct.pack(">I", zlib.crc32(body))
    )


def gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def url_of(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


images = st.one_of(
    st.integers(0, len(PNG)).map(lambda n: PNG[:n]),  # truncated
    st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)).map(
        lambda t: PNG[: t[0]] + bytes([t[1]]) + PNG[t[0] + 1 :]  # one byte damaged
    ),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)).map(lambda t: png_header(*t)),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda t: gif_header(*t)),
    st.binary(max_size=64).map(lambda b: b"RIFF\x00\x00\x00\x00WEBP" + b),
    st.binary(max_size=64).map(lambda b: b"\xff\xd8\xff" + b),
    st.binary(max_size=64),
)
urls = st.one_of(
    images.map(url_of),
    st.text(max_size=40).map(lambda t: "data:" + t),
    st.text(max_size=40).map(lambda t: "data:image/png;base64," + t),
    st.sampled_from(["data:", "data:image/png;base64,", "data:image/png,raw", "data:;base64,AA=="]),
)


def _budget(start: float) -> None:
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # no decompression bomb


@pytest.fixture(autouse=True)
def _traced() -> object:
    tracemalloc.start()
    yield
    tracemalloc.stop()


@FUZZ
@given(data=images)
def test_inspecting_damaged_images_is_one_clean_line(data: bytes) -> None:
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        info = inspect_image(data)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)
    else:
        assert info.width >= 1 and info.height >= 1 and info.format
    # The runtime's header reader never raises, whatever the bytes.
    size = dimensions(data)
    assert size is None or all(isinstance(n, int) for n in size)
    assert describe(data)["bytes"] == len(data)
    _budget(start)


@FUZZ
@given(url=urls)
def test_loading_rows_with_malformed_images_never_crashes(url: str) -> None:
    tracemalloc.reset_peak()
    start = time.perf_counter()
    part = {"type": "image_url", "image_url": {"url": url}}
    record = {"messages": [{"role": "user", "content": [part]}], "image": part}
    try:
        ds = Dataset.from_records([record])
    except DatasetValidationError as exc:
        assert exc.report.errors
        for problem in exc.report.errors:
            line = str(problem)
            assert "\n" not in line and "Traceback" not in line
            assert problem.row == 0 and problem.field and problem.fix
    else:
        report = ds.validate(provider="openai", validation=ds)
        assert all("\n" not in str(p) for p in report)
    # What a python grader would receive never raises either.
    assert images_for_python([{"image": url}, {"image": part}], "") is not None
    _budget(start)


def test_a_header_claiming_a_huge_image_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="more than rlft decodes"):
        inspect_image(png_header(100_000, 100_000))
    with pytest.raises(ImageError, match="too many pixels"):
        inspect_image(png_header(10_000, 10_000))  # past Pillow's own guard
    with pytest.raises(DatasetValidationError, match="image-unreadable"):
        part = {"type": "image_url", "image_url": {"url": url_of(png_header(50_000, 50_000))}}
        Dataset.from_records([{"messages": [{"role": "user", "content": [part]}]}])
