"""Generate the vision example's dataset: ``python examples/vision/make_data.py``.

Each row is one small generated image, filled with one of four colours (each image's shade
varies), and the question "what colour is this image ?". The model must answer with the
colour's name. Images are PNGs embedded as data URLs, so the JSONL files are the whole
dataset. Deterministic: the same seed writes the same files (a test checks the shipped ones
match).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
from pathlib import Path

from PIL import Image

COLOURS = {
    "red": (215, 45, 45),
    "yellow": (230, 215, 40),
    "green": (45, 170, 65),
    "blue": (45, 65, 210),
}
QUESTION = "what colour is this image ?"
SIZE = 16  # pixels a side; the tiny model sees 16 x 16 anyway
JITTER = 25  # each channel moves up to this much, so no two images are alike


def image(colour: str, rng: random.Random) -> Image.Image:
    """A ``SIZE`` x ``SIZE`` image of ``colour``, in a shade of its own."""
    shade = tuple(max(0, min(255, v + rng.randint(-JITTER, JITTER))) for v in COLOURS[colour])
    return Image.new("RGB", (SIZE, SIZE), shade)


def data_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def row(colour: str, rng: random.Random) -> dict[str, object]:
    """One dataset row: the image and the question as chat content parts, and the answer."""
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(image(colour, rng))}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
        "colour": colour,
    }


def rows(count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [row(rng.choice(sorted(COLOURS)), rng) for _ in range(count)]


def write(path: Path, count: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in rows(count, seed):
            fh.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    write(args.out / "train.jsonl", count=480, seed=1)
    write(args.out / "valid.jsonl", count=48, seed=2)
    print(f"wrote {args.out / 'train.jsonl'} and {args.out / 'valid.jsonl'}")


if __name__ == "__main__":
    main()
