"""The local runner's inputs: datasets as TRL rows, and model names checked offline.

Light (no torch): used by the provider in the caller's process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rlft.exceptions import UsageError
from rlft.workers import atomic_write

if TYPE_CHECKING:
    from rlft.datasets import Dataset

__all__ = ["check_model", "write_rows"]


def write_rows(path: Path, dataset: Dataset) -> str:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        from rlft.datasets import to_trl_rows

        lines = [json.dumps(row, ensure_ascii=False) for row in to_trl_rows(dataset)]
        atomic_write(path, "\n".join(lines) + "\n")
    return str(path)


def check_model(model: str, *, offline: bool) -> None:
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UsageError(f"model folder {model!r} has no config.json: not a transformers model")
        return
    if model.startswith((".", "/", "~")) or model.count("/") > 1:  # not an "org/name" id
        raise UsageError(f"model folder {model!r} does not exist")
    if not offline:
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise UsageError(
            f"model {model!r} is not in the Hugging Face cache and the local runner is offline: "
            f"download it first (`hf download {model}`), name a local folder, or set "
            "`offline = false` under [local] in rlft.toml"
        )
