"""Between job-folder files and neutral models: datasets in, events and checkpoints out.

Light (no torch): used by the provider in the caller's process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlft.exceptions import UsageError
from rlft.provider import Checkpoint, JobEvent, StepMetrics
from rlft_providers.local._jobdir import EVENT_ID_WIDTH, atomic_write

if TYPE_CHECKING:
    from rlft.datasets import Dataset

__all__ = [
    "check_model",
    "checkpoints_from_events",
    "event_from_record",
    "parse_cursor",
    "write_rows",
]


def checkpoints_from_events(job_id: str, events: list[JobEvent]) -> list[Checkpoint]:
    found: dict[int, Checkpoint] = {}
    for event in events:
        if event.kind != "checkpoint" or not event.raw:
            continue
        step, path = event.raw.get("step"), event.raw.get("path")
        if not isinstance(step, int) or not isinstance(path, str) or not Path(path).is_dir():
            continue
        found[step] = Checkpoint(
            id=f"checkpoint-{step}",
            job_id=job_id,
            step=step,
            model=path,
            metrics=event.metrics or StepMetrics(step=step),
            created_at=event.at,
            raw=event.raw,
        )
    return [found[step] for step in sorted(found)]


def parse_cursor(after: str | None) -> int:
    if after is None:
        return 0
    if not after.isdigit():
        raise UsageError(f"{after!r} is not an event id of a local job (ids are line numbers)")
    return int(after)


def event_from_record(job_id: str, number: int, record: Mapping[str, Any]) -> JobEvent:
    event_id = f"{number:0{EVENT_ID_WIDTH}d}"
    return JobEvent.model_validate({**record, "id": event_id, "job_id": job_id})


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
