"""Tinker's protobuf wire format, read and written with the SDK's own generated modules.

The SDK sends ``forward_backward`` as a ``tinker_public.ForwardBackwardRequest`` (zstd-compressed
when the client config says so) and only accepts ``SampleResponse`` and
``ForwardBackwardOutput`` results as protobuf (``Accept: application/x-protobuf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tinker.proto import tinker_public_pb2 as pb

from rlft.testing._fake_tinker_engine import Datum, Sampled, UserError

__all__ = ["FwdBwdRequest", "decode_forward_backward", "encode_fwdbwd_output", "encode_sample"]

_NUMPY: dict[int, np.dtype[Any]] = {
    pb.DTYPE_FLOAT32: np.dtype(np.float32),
    pb.DTYPE_INT64: np.dtype(np.int64),
    pb.DTYPE_INT32: np.dtype(np.int32),
}


@dataclass
class FwdBwdRequest:
    model_id: str
    seq_id: int
    loss_fn: str
    forward_only: bool
    data: list[Datum]


def decode_forward_backward(body: bytes, encoding: str | None) -> FwdBwdRequest:
    """Parse a ``forward_backward`` body (protobuf, optionally ``Content-Encoding: zstd``)."""
    if encoding == "zstd":
        import zstandard

        body = zstandard.ZstdDecompressor().decompress(body)
    msg = pb.ForwardBackwardRequest()
    msg.ParseFromString(body)
    data: list[Datum] = []
    for index, datum in enumerate(msg.data):
        tokens: list[int] = []
        for chunk in datum.model_input:
            if chunk.WhichOneof("chunk") != "encoded_text":
                raise UserError(
                    f"datum {index}: only encoded_text chunks are supported by this server"
                )
            tokens += np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32).tolist()
        inputs = {name: _tensor(name, index, t) for name, t in datum.loss_fn_inputs.items()}
        data.append(Datum(tokens=tokens, inputs=inputs))
    return FwdBwdRequest(msg.model_id, msg.seq_id, msg.loss_fn, msg.forward_only, data)


def _tensor(name: str, index: int, msg: pb.Tensor) -> torch.Tensor:
    dtype = _NUMPY.get(msg.dtype)
    if dtype is None or msg.WhichOneof("encoding") != "dense":
        raise UserError(
            f"datum {index}: loss_fn_inputs[{name!r}] must be a dense float32 or int64 tensor"
        )
    array = np.frombuffer(msg.dense, dtype=dtype).copy()
    return torch.from_numpy(array)


def _batched(rows: Sequence[Sequence[float]]) -> pb.BatchedTensor:
    flat = np.concatenate([np.asarray(r, dtype=np.float32) for r in rows]) if rows else np.zeros(0)
    lengths = [len(r) * 4 for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return pb.BatchedTensor(
        data=flat.astype(np.float32).tobytes(), offsets=offsets.tobytes(), dtype=pb.DTYPE_FLOAT32
    )


def encode_fwdbwd_output(outputs: list[dict[str, list[float]]], metrics: dict[str, float]) -> bytes:
    """A ``ForwardBackwardOutput`` with one ``ArrayRecord`` holding every datum's outputs."""
    record = pb.ArrayRecord(type_tag="ArrayRecord", num_datums=len(outputs))
    if outputs:
        for name in outputs[0]:
            record.fields[name].CopyFrom(_batched([out[name] for out in outputs]))
    msg = pb.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord", loss_fn_outputs=[record], metrics=metrics
    )
    return bytes(msg.SerializeToString())


def encode_sample(sequences: list[Sampled], prompt_logprobs: list[float] | None) -> bytes:
    """A ``SampleResponse``: int32 tokens and float32 logprobs per sequence."""
    msg = pb.SampleResponse()
    for seq in sequences:
        msg.sequences.add(
            stop_reason=pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH,
            tokens=np.asarray(seq.tokens, dtype=np.int32).tobytes(),
            logprobs=np.asarray(seq.logprobs, dtype=np.float32).tobytes(),
        )
    if prompt_logprobs is not None:
        msg.prompt_logprobs = np.asarray(prompt_logprobs, dtype=np.float32).tobytes()
    return bytes(msg.SerializeToString())
