"""Generate the quickstart's ticket-triage dataset: ``python examples/quickstart/make_data.py``.

Each ticket is an opener, a filler, one keyword that gives away the label, and a closer, for
example ``"urgent the username asap"`` -> ``account``. The model must answer with the label as
its first word. Deterministic: the same seed writes the same files (a test checks the shipped
ones match).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

LABELS = {
    "billing": ["invoice", "refund", "charge", "payment", "receipt", "price"],
    "bug": ["crash", "error", "freeze", "glitch", "exception", "timeout"],
    "account": ["password", "login", "username", "profile", "email", "signup"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "package", "address"],
}
OPENERS = ["urgent", "hello", "hi", "please", "help", "question", "issue", "note"]
FILLERS = ["the", "my", "about", "regarding", "with", "for", "on", "a"]
CLOSERS = ["asap", "thanks", "today", "now", "again", "please", "soon", "!"]
INSTRUCTION = "triage"  # the system message: answer with the label word


def ticket(rng: random.Random) -> dict[str, object]:
    label = rng.choice(sorted(LABELS))
    opener, filler = rng.choice(OPENERS), rng.choice(FILLERS)
    words = [opener, filler, rng.choice(LABELS[label]), rng.choice(CLOSERS)]
    return {
        "messages": [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": " ".join(words)},
        ],
        "label": label,
    }


def write(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(rows):
            fh.write(json.dumps(ticket(rng)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    write(args.out / "train.jsonl", rows=1000, seed=1)
    write(args.out / "valid.jsonl", rows=64, seed=2)
    print(f"wrote {args.out / 'train.jsonl'} and {args.out / 'valid.jsonl'}")


if __name__ == "__main__":
    main()
