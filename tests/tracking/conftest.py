"""Every tracker in its offline or local mode, writing under a temporary folder."""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# trackio reads TRACKIO_DIR once, at import: set it before any test imports trackio.
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="rlft-trackio-")
os.environ["HF_HUB_OFFLINE"] = "1"  # trackio's only network use is the Hub; local-only here
os.environ["WANDB_SILENT"] = "true"
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps `file:` stores behind this flag


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse every connection that leaves the machine (loopback and unix sockets still work)."""
    tried: list[Any] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else "unix"
        if host not in {"unix", "127.0.0.1", "::1", "localhost"}:
            tried.append(address)
            raise OSError(f"test: no network ({address})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield tried


def read_wandb_history(folder: Path) -> list[dict[str, Any]]:
    """The history rows of the offline run file under ``folder`` (W&B's LevelDB-style log).

    wandb 0.31 ships no Python reader, so this reads the documented record framing: a 7-byte
    header, then 32 KiB blocks of ``crc32, length (u16), type (u8)`` chunks of ``Record`` protos.
    """
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    position, block, pending, rows = 7, 32768, b"", []
    while position + 7 <= len(raw):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        position += 7
        if kind == 0 and length == 0:
            break
        pending += raw[position : position + length]
        position += length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows
