"""``FakeTinkerServer``: the Tinker wire protocol (SDK 0.38) over loopback HTTP, real tiny model.

The official ``tinker`` SDK, unmodified, is the client. Requests are processed when they arrive
(under one compute lock) and their results parked as futures that ``retrieve_future`` returns,
so the SDK's polling, retries and protobuf decoding all run for real.

It has its own ``http.server`` handler rather than ``LoopbackServer``'s: fault injection must
drop a connection with no answer, before or after applying a request, which a handler that
returns an ``httpx.Response`` cannot do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import socket
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import torch
from pydantic import ValidationError
from tinker import types

from rlft.testing import _fake_tinker_engine as _engine
from rlft.testing import _fake_tinker_wire as _wire
from rlft.testing._fake_tinker_engine import BaseModel, Run, UserError

__all__ = ["FakeTinkerServer", "FaultMode"]

FaultMode = Literal["refuse", "drop_response", "error", "fail"]
_FAULT_MODES = ("refuse", "drop_response", "error", "fail")
_BUILT_SAMPLERS = 4
_GET_ROUTES = frozenset({"get_server_capabilities", "healthz", "get_sampler", "list_checkpoints"})
# Friendly names for the routes whose last path segment differs from the SDK method.
_ALIASES = {
    "sample": "asample",
    "save_state": "save_weights",
    "load_state": "load_weights",
    "compute_logprobs": "asample",
}


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})


class _HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class _Fault:
    mode: FaultMode
    times: int
    status: int
    message: str
    then_stop: bool


@dataclass
class _Sampler:
    sampler_id: str
    base: BaseModel
    model_path: str | None
    lora: Mapping[str, Any]
    adapter: _engine.Adapter | None  # None: the base model itself


@dataclass
class _Result:
    kind: Literal["json", "proto", "error"]
    payload: Any


class FakeTinkerServer:
    """A Tinker-protocol training service on 127.0.0.1 backed by a real tiny torch model.

    Speaks the wire protocol of the official `tinker` SDK 0.38.0 (Apache-2.0), so the
    unmodified SDK is the client, sync or async:
    `tinker.ServiceClient(base_url=server.url, api_key="tml-...")`. Training is real: each run
    is a `peft` LoRA (alpha 32, on the attention, MLP and unembedding projections Tinker's
    `train_*` switches name) over a private copy of the base model; `forward_backward`
    computes the loss and accumulates gradients; `optim_step` applies AdamW with the request's
    `AdamParams` and answers `metrics={"step": <run's step counter>, "grad_norm": ...}`;
    samplers serve frozen LoRA snapshots. All torch work runs on CPU, one request at a time.
    Needs `rlft[local,lora]` (torch, transformers, peft) and the `tinker` SDK.

    Example:
        ```python
        with FakeTinkerServer({"tiny": folder}) as server:
            service = tinker.ServiceClient(base_url=server.url, api_key="tml-test")
            trainer = service.create_lora_training_client("tiny", rank=8).result()
            server.fail_next("optim_step", mode="drop_response")
        ```

    Args:
        models: Served base model name -> Hugging Face causal-LM folder (one
            `rlft.tiny.build_tiny_model` writes), or a list of folders, each served under its
            own path. A requested name may also be the path of a served folder. Serve under
            the path if clients call the SDK's `SamplingClient.get_tokenizer()`: it loads the
            tokenizer by base model name (`TrainingClient.get_tokenizer()` gets the folder
            from `get_info` and works either way).
        root: Where checkpoints live (`root/<run>/weights/<name>`, `.../sampler_weights/...`);
            a temporary folder, deleted on `close()`, if None. A new server on the same root
            loads the states an earlier one saved.
        api_key: The one accepted key; if None, any key starting with `tml-` is accepted.
        max_lora_rank: LoRA ranks from 1 to this are accepted (this fake's choice; Tinker
            documents no range).
        compress_fwdbwd: The client config flag that makes the SDK zstd-compress
            `forward_backward` bodies.
        seed: Seeds sampling for requests without `SamplingParams.seed`.
        torch_threads: `torch.set_num_threads` on start (it is process-wide); None leaves it.
        host: The address to bind.
        port: The port to bind; 0 picks a free one. Either way it is kept across
            `stop()`/`start()`.

    Routes: under `/api/v1`, `client/config`, `client/dynamic_config`, `create_session`,
    `session_heartbeat`, `sessions/{id}/finish`, `healthz`, `get_server_capabilities`,
    `telemetry` (accepted, ignored), `create_model`, `get_info`, `forward_backward` (protobuf,
    optionally zstd; `cross_entropy` with optional `weights`, `importance_sampling` with
    `logprobs` and `advantages`, `forward_only`), `optim_step`, `save_weights` (`save_state`),
    `load_weights` (`load_state[_with_optimizer]`,
    `create_training_client_from_state[_with_optimizer]`), `save_weights_for_sampler` (named,
    or unnamed for `save_weights_and_get_sampling_client`), `create_sampling_session`,
    `samplers/{id}`, `join_sampling_session`, `asample` (tokens and per-token logprobs as
    protobuf; `max_tokens`, `temperature`, `top_k`, `top_p`, `seed`, `stop` as token ids or
    strings, the stop included in the tokens; prompt logprobs, so `compute_logprobs`),
    `retrieve_future`, `cancel_future`, `training_runs/{id}/checkpoints`
    (`RestClient.list_checkpoints`, read from `root`, so it survives restarts). Sampled
    logprobs are the model's own (before temperature), so on-policy importance ratios are 1.

    Not implemented: multi-tenant quotas, rate limits, billing and queueing (a result is ready
    on the first poll, never `try_again`); `retrieve_futures` session polling; server-side
    custom losses and losses other than the two above; `DimuonParams`; top-k logprobs,
    `target_prompt_logprobs`, `prompt_alt_tokens_k`; image and audio chunks; sparse tensors;
    `save_weights_external`, `copy_weights` and the REST management routes other than
    checkpoint listing (publishing, TTLs, training run and session listing; 404);
    `inflight` samplers (served as snapshots); JWT auth.

    Limits, answered as the SDK's exceptions with the fix in the message: an unknown base
    model (400 `BadRequestError`, lists the served models); a LoRA rank outside
    1..`max_lora_rank` (400); a missing or wrong API key (401 `AuthenticationError`; no key
    is ever echoed); an unknown session (a client of an earlier server process), run, sampler
    or checkpoint (404 `NotFoundError`); malformed data (a failed future:
    `RequestFailedError`).

    Idempotency: a request repeating a `(model, seq_id)` the server has seen gets the first
    answer back and is not applied again. The SDK repeats requests whose answer it lost, so a
    dropped answer never applies an `optim_step` twice.

    Fault injection, for testing a client's retries: `fail_next(operation, mode)` with
    `"refuse"` (drop the connection before applying), `"drop_response"` (apply, then drop the
    connection unanswered), `"error"` (answer HTTP `status`, default 503, without applying)
    or `"fail"` (answer a future that fails, without applying); `times=n` fails n in a row,
    `then_stop=True` stops the server after the fault. `stop()` closes the port and every
    open connection (clients see connection refused); `start()` serves the same URL again
    with the in-memory state kept; `running` and `wait_until_stopped()` tell when it is
    down. A new instance on the same `root` is a restarted service: runs, sessions and
    futures are gone, saved checkpoints remain. Counters:
    `requests(op)`, `wait_for_requests(op, n)`, `runs()`, `optim_steps(run)`,
    `training_step(run)`, `checkpoint_step(path)`. `python -m rlft.testing._fake_tinker
    --model NAME=FOLDER [--root DIR] [--port N]` serves from its own process.

    Attributes:
        root: The checkpoint folder.
        max_lora_rank: The largest accepted LoRA rank.
    """

    def __init__(
        self,
        models: Mapping[str, Path | str] | Sequence[Path | str],
        *,
        root: Path | str | None = None,
        api_key: str | None = None,
        max_lora_rank: int = 128,
        compress_fwdbwd: bool = True,
        seed: int = 0,
        torch_threads: int | None = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if isinstance(models, Mapping):
            self._folders = {str(name): Path(folder) for name, folder in models.items()}
        else:
            self._folders = {str(folder): Path(folder) for folder in models}
        if not self._folders:
            raise ValueError("FakeTinkerServer needs at least one model to serve")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-tinker-")
            root = self._tmp.name
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._api_key = api_key
        self.max_lora_rank = max_lora_rank
        self._compress = compress_fwdbwd
        self._torch_threads = torch_threads
        self._generator = torch.Generator().manual_seed(seed)
        self._host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._life = threading.Lock()  # start/stop
        self._down = threading.Event()
        self._down.set()
        self._lock = threading.Lock()  # server state
        self._compute = threading.Lock()  # torch work, one request at a time
        self._changed = threading.Condition(self._lock)
        self._bases: dict[str, BaseModel] = {}
        self._sessions: set[str] = set()
        self._runs: dict[str, Run] = {}
        self._samplers: dict[str, _Sampler] = {}
        self._built: dict[str, Any] = {}  # sampler id -> built LoRA model, oldest first
        self._results: dict[str, _Result] = {}
        self._seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._inflight: set[tuple[Any, ...]] = set()
        self._faults: dict[str, list[_Fault]] = {}
        self._requests: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._bind()

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ``base_url`` for ``tinker.ServiceClient`` (no ``/api/v1`` suffix)."""
        return f"http://{self._host}:{self._port}"

    def _bind(self) -> None:
        handler = type("Handler", (_Handler,), {"owner": self})
        httpd = ThreadingHTTPServer((self._host, self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._port = int(httpd.server_address[1])

    @property
    def running(self) -> bool:
        """Whether the server is serving (started and not stopped)."""
        return self._thread is not None

    def start(self) -> FakeTinkerServer:
        """Serve (again) on the same port; in-memory state is kept across ``stop()``."""
        with self._life:
            if self._thread is not None:
                return self
            if self._torch_threads is not None:
                torch.set_num_threads(self._torch_threads)
            if self._httpd is None:
                self._bind()
            assert self._httpd is not None
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
            self._down.clear()
            return self

    def stop(self) -> None:
        """Close the port and drop every open connection (an outage or a crashed service)."""
        with self._life:
            httpd, thread = self._httpd, self._thread
            self._httpd, self._thread = None, None
            if httpd is not None:
                if thread is not None:
                    httpd.shutdown()
                httpd.server_close()
            with self._lock:
                connections = list(self._connections)
                self._connections.clear()
            for conn in connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._down.set()

    def wait_until_stopped(self, timeout: float = 30.0) -> None:
        """Block until the server is down (after ``stop()`` or a ``then_stop`` fault)."""
        if not self._down.wait(timeout):
            raise TimeoutError(f"the server was still running after {timeout} s")

    def close(self) -> None:
        """Stop and delete the temporary root, if the server made one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeTinkerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- test controls -------------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        mode: FaultMode = "refuse",
        *,
        times: int = 1,
        status: int = 503,
        message: str = "injected fault",
        then_stop: bool = False,
    ) -> None:
        """Make the next ``times`` requests of ``operation`` fail in ``mode``.

        Args:
            operation: The route's last path segment (``"optim_step"``, ``"forward_backward"``,
                ``"asample"``, ``"save_weights"``, ``"save_weights_for_sampler"``,
                ``"load_weights"``, ``"create_model"``, ``"retrieve_future"``, ...); aliases
                ``"sample"``, ``"save_state"``, ``"load_state"`` are accepted.
            mode: ``"refuse"`` (drop the connection, not applied), ``"drop_response"``
                (applied, then the connection dropped unanswered), ``"error"`` (HTTP
                ``status``, not applied), ``"fail"`` (a failed future, not applied).
            times: How many consecutive requests fail.
            status: The HTTP status of ``"error"``.
            message: The error text of ``"error"`` and ``"fail"``.
            then_stop: After the last of these faults, ``stop()`` the server (it stays down
                until ``start()``): e.g. an ``optim_step`` applied, its answer lost, and the
                service gone. ``wait_until_stopped()`` returns once it is down.
        """
        if mode not in _FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(_FAULT_MODES)}, not {mode!r}")
        op = _ALIASES.get(operation, operation)
        with self._lock:
            self._faults.setdefault(op, []).append(_Fault(mode, times, status, message, then_stop))

    def requests(self, operation: str) -> int:
        """How many ``operation`` requests arrived (replays and faulted ones included)."""
        with self._lock:
            return self._requests[_ALIASES.get(operation, operation)]

    def wait_for_requests(self, operation: str, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` ``operation`` requests arrived; ``TimeoutError`` otherwise."""
        op = _ALIASES.get(operation, operation)
        with self._changed:
            if not self._changed.wait_for(lambda: self._requests[op] >= count, timeout):
                raise TimeoutError(f"{self._requests[op]} of {count} {op} requests arrived")

    def runs(self) -> list[str]:
        """The ids (Tinker ``model_id``) of the training runs this server holds."""
        with self._lock:
            return list(self._runs)

    def optim_steps(self, run_id: str) -> int:
        """Optimizer steps this server applied to ``run_id`` (replayed requests not counted)."""
        with self._lock:
            return self._run(run_id).applied

    def training_step(self, run_id: str) -> int:
        """The run's step counter: steps behind its weights, restored by ``load_state``."""
        with self._lock:
            return self._run(run_id).step

    def checkpoint_step(self, tinker_path: str) -> int:
        """The step counter recorded in a saved checkpoint (``tinker://.../weights/name``)."""
        folder = self._checkpoint_folder(tinker_path)
        return int(json.loads((folder / "meta.json").read_text(encoding="utf-8"))["step"])

    # --- request plumbing ----------------------------------------------------------------

    def _count(self, op: str) -> _Fault | None:
        with self._changed:
            self._requests[op] += 1
            self._changed.notify_all()
            queue = self._faults.get(op)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
                return fault
            return dataclasses.replace(fault, then_stop=False)  # only the last one stops

    def _authorized(self, key: str | None) -> bool:
        if not key:
            return False
        if self._api_key is not None:
            return key == self._api_key
        return key.startswith("tml-")

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        """Answer one request (after fault injection)."""
        try:
            if not self._authorized(headers.get("x-api-key")):
                raise _HttpError(
                    401,
                    "invalid or missing API key; pass the key this server accepts as "
                    "api_key= or TINKER_API_KEY (it must start with 'tml-')",
                )
            route = self._route(method, path)
            return route(path, headers, body, fail)
        except _HttpError as error:
            return _Reply.json(error.status, {"detail": error.detail})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return _Reply.json(400, {"detail": f"invalid request body at {where}: {first['msg']}"})
        except Exception as error:  # noqa: BLE001 - a 4xx, so the SDK does not retry a bug
            detail = f"FakeTinkerServer failed on {path}: {type(error).__name__}: {error}"
            return _Reply.json(422, {"detail": detail})

    def _route(
        self, method: str, path: str
    ) -> Callable[[str, Mapping[str, str], bytes, str | None], _Reply]:
        name = _operation(path)
        handler = getattr(self, f"_do_{name}", None)
        if handler is not None and method == ("GET" if name in _GET_ROUTES else "POST"):
            return handler  # type: ignore[no-any-return]
        raise _HttpError(404, f"FakeTinkerServer does not implement {method} {path}")

    def _future(
        self, result: _Result, *, model_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        # Unique across restarts: a future from before one never finds another's result.
        request_id = f"req-{uuid.uuid4().hex}"
        with self._lock:
            self._results[request_id] = result
        future: dict[str, Any] = {"request_id": request_id, **extra}
        if model_id is not None:
            future["model_id"] = model_id
        return future

    def _once(
        self,
        key: tuple[Any, ...],
        fail: str | None,
        work: Callable[[], tuple[_Result, dict[str, Any]]],
    ) -> _Reply:
        """Run ``work`` once per idempotency ``key``; a repeat gets the first future back."""
        with self._changed:
            self._changed.wait_for(lambda: key not in self._inflight)
            seen = self._seen.get(key)
            if seen is None:
                self._inflight.add(key)
        if seen is not None:
            return _Reply.json(200, seen)
        future: dict[str, Any] | None = None
        try:
            if fail is not None:
                future = self._future(_Result("error", {"error": fail, "category": "server"}))
            else:
                with self._compute:
                    try:
                        result, extra = work()
                    except UserError as error:
                        result = _Result("error", {"error": str(error), "category": "user"})
                        extra = {}
                    except _HttpError:
                        raise
                    except Exception as error:  # noqa: BLE001 - a bug here fails the request
                        message = f"FakeTinkerServer failed: {type(error).__name__}: {error}"
                        result, extra = (
                            _Result("error", {"error": message, "category": "server"}),
                            {},
                        )
                future = self._future(result, **extra)
        finally:
            with self._changed:
                if future is not None:
                    self._seen[key] = future
                self._inflight.discard(key)
                self._changed.notify_all()
        return _Reply.json(200, future)

    # --- lookups -------------------------------------------------------------------------

    def _base(self, name: str) -> BaseModel:
        folder = self._folders.get(name)
        if folder is None:
            for served, candidate in self._folders.items():
                with contextlib.suppress(OSError):
                    if Path(name).resolve() == candidate.resolve():
                        name, folder = served, candidate
                        break
        if folder is None:
            offered = ", ".join(sorted(self._folders))
            raise _HttpError(
                400, f"base model {name!r} is not offered by this server; use one of: {offered}"
            )
        with self._lock:
            base = self._bases.get(name)
        if base is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            base = BaseModel(name, folder)
            with self._lock:
                base = self._bases.setdefault(name, base)
        return base

    def _session(self, session_id: str) -> None:
        with self._lock:
            known = session_id in self._sessions
        if not known:
            raise _HttpError(
                404,
                f"session {session_id!r} is not on this server (it was restarted, or the "
                "session belongs to another one); create a new tinker.ServiceClient",
            )

    def _run(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise _HttpError(
                404,
                f"training run {run_id!r} is not on this server (a restarted server keeps only "
                "saved checkpoints); create a training client from a saved state",
            )
        return run

    def _checkpoint_folder(
        self, tinker_path: str, *, kinds: tuple[str, ...] = ("weights", "sampler_weights")
    ) -> Path:
        try:
            parsed = types.ParsedCheckpointTinkerPath.from_tinker_path(tinker_path)
        except ValueError:
            raise _HttpError(
                400,
                f"{tinker_path!r} is not a checkpoint path; use the path save_state or "
                "save_weights_for_sampler returned (tinker://<run>/weights/<name>)",
            ) from None
        kind, name = parsed.checkpoint_id.split("/", 1)
        if kind not in kinds:
            wanted = " or ".join(f"tinker://<run>/{k}/<name>" for k in kinds)
            raise _HttpError(400, f"{tinker_path!r} cannot be used here; give {wanted}")
        folder = self.root / parsed.training_run_id / kind / name
        if not (folder / "meta.json").is_file():
            raise _HttpError(404, f"no checkpoint at {tinker_path!r}; use a path a save returned")
        return folder

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"{}")
        except ValueError:
            raise _HttpError(400, "the request body is not JSON") from None

    # --- session routes ------------------------------------------------------------------

    def _do_config(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        config = types.ClientConfigResponse(
            pjwt_auth_enabled=False,
            use_pyqwest_transport=False,
            proto_compress_fwdbwd=self._compress,
            sample_use_retrieve_futures=False,
            sample_join_sampling_session=False,
            custom_loss_server_side=False,
        )
        return _Reply.json(200, config.model_dump(mode="json"))

    def _do_dynamic_config(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, types.ClientDynamicConfigResponse().model_dump(mode="json"))

    def _do_create_session(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        types.CreateSessionRequest.model_validate(self._json(body))
        session_id = str(uuid.uuid4())
        with self._lock:
            self._sessions.add(session_id)
        return _Reply.json(200, {"type": "create_session", "session_id": session_id})

    def _do_session_heartbeat(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, {"type": "session_heartbeat"})

    def _do_finish(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, {})

    def _do_healthz(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, {"status": "ok"})

    def _do_telemetry(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, {"status": "accepted"})

    def _do_cancel_future(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(200, {})

    def _do_get_server_capabilities(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        models = []
        for name, folder in sorted(self._folders.items()):
            context = None
            with contextlib.suppress(OSError, ValueError, KeyError):
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                context = int(config["max_position_embeddings"])
            models.append(
                {
                    "model_name": name,
                    "max_context_length": context,
                    "trainable": True,
                    "sampleable": True,
                }
            )
        return _Reply.json(200, {"supported_models": models})

    def _do_list_checkpoints(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        run_id = urlsplit(path).path.rstrip("/").split("/")[-2]
        checkpoints = []
        for kind, label in (("weights", "training"), ("sampler_weights", "sampler")):
            folder = self.root / run_id / kind
            if not folder.is_dir():
                continue
            for saved in sorted(folder.iterdir()):
                if not (saved / "meta.json").is_file():
                    continue  # a save still being written
                stat = (saved / "meta.json").stat()
                checkpoints.append(
                    {
                        "checkpoint_id": f"{kind}/{saved.name}",
                        "checkpoint_type": label,
                        "time": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
                        "tinker_path": f"tinker://{run_id}/{kind}/{saved.name}",
                        "size_bytes": sum(f.stat().st_size for f in saved.iterdir()),
                    }
                )
        return _Reply.json(200, {"checkpoints": checkpoints, "cursor": None})

    # --- futures -------------------------------------------------------------------------

    def _do_retrieve_future(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.FutureRetrieveRequest.model_validate(self._json(body))
        with self._lock:
            result = self._results.get(request.request_id)
        if result is None:
            raise _HttpError(
                404, f"unknown request_id {request.request_id!r} (futures do not survive a restart)"
            )
        if result.kind == "proto":
            return _Reply(200, result.payload, content_type="application/x-protobuf")
        return _Reply.json(200, result.payload)

    # --- training ------------------------------------------------------------------------

    def _do_create_model(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.CreateModelRequest.model_validate(self._json(body))
        self._session(request.session_id)
        base = self._base(request.base_model)
        if request.lora_config is None:
            raise _HttpError(
                400,
                "full fine-tuning is not offered; pass a LoRA config (create_lora_training_client)",
            )
        rank = request.lora_config.rank
        if not 1 <= rank <= self.max_lora_rank:
            raise _HttpError(
                400,
                f"LoRA rank {rank} is out of range; use a rank from 1 to {self.max_lora_rank}",
            )
        run_id = f"{request.session_id}:train:{request.model_seq_id}"
        lora = request.lora_config.model_dump(mode="json")

        def work() -> tuple[_Result, dict[str, Any]]:
            run = Run(
                run_id,
                base,
                lora,
                base.lora_model(lora),
                user_metadata=dict(request.user_metadata or {}),
            )
            with self._lock:
                self._runs[run_id] = run
            payload = types.CreateModelResponse(model_id=run_id).model_dump(mode="json")
            return _Result("json", payload), {"model_id": run_id}

        return self._once(("create_model", request.session_id, request.model_seq_id), fail, work)

    def _do_get_info(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.GetInfoRequest.model_validate(self._json(body))
        with self._lock:
            run = self._run(request.model_id)
        info = types.GetInfoResponse(
            type="get_info",
            model_id=run.run_id,
            model_data=types.ModelData(
                arch=str(getattr(run.base.model.config, "model_type", "unknown")),
                model_name=run.base.name,
                tokenizer_id=str(run.base.folder),
            ),
            is_lora=True,
            lora_rank=run.rank,
            model_name=run.base.name,
        )
        return _Reply.json(200, info.model_dump(mode="json"))

    def _do_forward_backward(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        try:
            request = _wire.decode_forward_backward(body, headers.get("content-encoding"))
        except UserError as error:
            raise _HttpError(400, str(error)) from None
        except Exception:  # noqa: BLE001 - any decoding failure is the client's body
            raise _HttpError(400, "the forward_backward body is not a tinker protobuf") from None
        with self._lock:
            run = self._run(request.model_id)

        def work() -> tuple[_Result, dict[str, Any]]:
            outputs, metrics = run.forward_backward(
                request.data, request.loss_fn, forward_only=request.forward_only
            )
            return _Result("proto", _wire.encode_fwdbwd_output(outputs, metrics)), {
                "model_id": run.run_id
            }

        return self._once(("forward_backward", request.model_id, request.seq_id), fail, work)

    def _do_optim_step(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.OptimStepRequest.model_validate(self._json(body))
        with self._lock:
            run = self._run(request.model_id)
        if not isinstance(request.optim_params, types.AdamParams):
            raise _HttpError(400, "only Adam is offered; pass types.AdamParams")
        params = request.optim_params.model_dump(mode="json")

        def work() -> tuple[_Result, dict[str, Any]]:
            metrics = run.optim_step(params)
            payload = types.OptimStepResponse(metrics=metrics).model_dump(mode="json")
            return _Result("json", payload), {"model_id": run.run_id}

        return self._once(("optim_step", request.model_id, request.seq_id), fail, work)

    def _do_save_weights(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.SaveWeightsRequest.model_validate(self._json(body))
        with self._lock:
            run = self._run(request.model_id)
        name = _checkpoint_name(request.path)
        folder = self.root / run.run_id / "weights" / name

        def work() -> tuple[_Result, dict[str, Any]]:
            if folder.exists() and not request.overwrite:
                raise UserError(
                    f"a state named {name!r} already exists for this run; pick another name "
                    "or pass overwrite=True"
                )
            adapter = _engine.adapter_of(run.model)
            _engine.save_checkpoint(
                folder, run=run, adapter=adapter, with_optimizer=True, kind="training"
            )
            tinker_path = f"tinker://{run.run_id}/weights/{name}"
            payload = types.SaveWeightsResponse(path=tinker_path, type="save_weights").model_dump(
                mode="json"
            )
            return _Result("json", payload), {"model_id": run.run_id}

        return self._once(("save_weights", request.model_id, request.seq_id), fail, work)

    def _do_save_weights_for_sampler(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.SaveWeightsForSamplerRequest.model_validate(self._json(body))
        with self._lock:
            run = self._run(request.model_id)

        def work() -> tuple[_Result, dict[str, Any]]:
            adapter = _engine.adapter_of(run.model)
            if request.path is None:
                # save_weights_and_get_sampling_client: an unnamed, in-memory snapshot.
                session = run.run_id.split(":train:")[0]
                sampler_id = f"{session}:sample:{request.sampling_session_seq_id}"
                self._add_sampler(sampler_id, run.base, run.lora, adapter, None)
                payload = {"sampling_session_id": sampler_id, "type": "save_weights_for_sampler"}
            else:
                name = _checkpoint_name(request.path)
                folder = self.root / run.run_id / "sampler_weights" / name
                _engine.save_checkpoint(
                    folder, run=run, adapter=adapter, with_optimizer=False, kind="sampler"
                )
                payload = {
                    "path": f"tinker://{run.run_id}/sampler_weights/{name}",
                    "type": "save_weights_for_sampler",
                }
            return _Result("json", payload), {"model_id": run.run_id}

        return self._once(
            ("save_weights_for_sampler", request.model_id, request.seq_id), fail, work
        )

    def _do_load_weights(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.LoadWeightsRequest.model_validate(self._json(body))
        folder = self._checkpoint_folder(request.path, kinds=("weights",))
        if request.model_id is not None:
            with self._lock:
                existing: Run | None = self._run(request.model_id)
            run_id = request.model_id
            key: tuple[Any, ...] = ("load_weights", request.model_id, request.seq_id)
        else:
            if request.session_id is None or request.model_seq_id is None:
                raise _HttpError(400, "load_weights needs model_id, or session_id and model_seq_id")
            self._session(request.session_id)
            existing = None
            run_id = f"{request.session_id}:train:{request.model_seq_id}"
            key = ("load_weights", request.session_id, request.model_seq_id)

        def work() -> tuple[_Result, dict[str, Any]]:
            meta, adapter, optim_state = _engine.load_checkpoint(folder)
            if existing is None:
                base = self._base(str(request.base_model or meta["base_model"]))
                run = Run(run_id, base, dict(meta["lora"]), base.lora_model(meta["lora"]))
            else:
                run = existing
                if run.base.name != meta["base_model"]:
                    raise UserError(
                        f"the checkpoint is of {meta['base_model']!r}, this run trains "
                        f"{run.base.name!r}; create a training client from the state instead"
                    )
            _engine.load_adapter(run.model, adapter)
            run.optimizer = None
            if request.optimizer and optim_state is not None:
                run._optimizer().load_state_dict(optim_state)
            run.step = int(meta.get("step", 0))
            with self._lock:
                self._runs[run_id] = run
            payload = {"path": request.path, "model_id": run_id, "type": "load_weights"}
            return _Result("json", payload), {"model_id": run_id}

        return self._once(key, fail, work)

    # --- sampling ------------------------------------------------------------------------

    def _add_sampler(
        self,
        sampler_id: str,
        base: BaseModel,
        lora: Mapping[str, Any],
        adapter: _engine.Adapter | None,
        model_path: str | None,
    ) -> _Sampler:
        sampler = _Sampler(sampler_id, base, model_path, dict(lora), adapter)
        if adapter is not None:
            self._sampler_model(sampler)  # fails now, not at the first sample, if it cannot load
        with self._lock:
            self._samplers[sampler_id] = sampler
        return sampler

    def _sampler_model(self, sampler: _Sampler) -> Any:
        """The sampler's model; only the few most recent LoRA samplers stay built in memory
        (a training loop makes a new sampler every step)."""
        if sampler.adapter is None:
            return sampler.base.model
        model = self._built.pop(sampler.sampler_id, None)
        if model is None:
            model = sampler.base.lora_model(sampler.lora)
            _engine.load_adapter(model, sampler.adapter)
        self._built[sampler.sampler_id] = model
        while len(self._built) > _BUILT_SAMPLERS:
            self._built.pop(next(iter(self._built)))
        return model

    def _do_create_sampling_session(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.CreateSamplingSessionRequest.model_validate(self._json(body))
        self._session(request.session_id)
        sampler_id = f"{request.session_id}:sample:{request.sampling_session_seq_id}"
        with self._lock:
            known = sampler_id in self._samplers
        if not known:
            if request.model_path:
                folder = self._checkpoint_folder(request.model_path)
                with self._compute:
                    meta, adapter, _ = _engine.load_checkpoint(folder)
                    base = self._base(str(meta["base_model"]))
                    try:
                        self._add_sampler(
                            sampler_id, base, meta["lora"], adapter, request.model_path
                        )
                    except UserError as error:
                        raise _HttpError(400, str(error)) from None
            elif request.base_model:
                self._add_sampler(sampler_id, self._base(request.base_model), {}, None, None)
            else:
                raise _HttpError(400, "give model_path (tinker://...) or base_model")
        return _Reply.json(
            200, {"type": "create_sampling_session", "sampling_session_id": sampler_id}
        )

    def _do_get_sampler(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        sampler_id = path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            sampler = self._samplers.get(sampler_id)
        if sampler is None:
            raise _HttpError(404, f"unknown sampler {sampler_id!r}; create a sampling client")
        payload = {
            "sampler_id": sampler_id,
            "base_model": sampler.base.name,
            "model_path": sampler.model_path,
        }
        return _Reply.json(200, payload)

    def _do_join_sampling_session(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        return _Reply.json(
            200, {"type": "join_sampling_session", "client_counter": next(self._ids)}
        )

    def _do_asample(
        self, path: str, headers: Mapping[str, str], body: bytes, fail: str | None
    ) -> _Reply:
        request = types.SampleRequest.model_validate(self._json(body))
        if request.sampling_session_id is None:
            raise _HttpError(400, "sample needs a sampling_session_id (create a sampling client)")
        with self._lock:
            sampler = self._samplers.get(request.sampling_session_id)
        if sampler is None:
            raise _HttpError(
                404, f"unknown sampler {request.sampling_session_id!r}; create a sampling client"
            )
        if request.num_samples < 1:
            raise _HttpError(400, "num_samples must be at least 1")
        key = ("asample", request.sampling_session_id, request.seq_id)
        ids = [
            f"{request.sampling_session_id}:{request.seq_id}:{i}"
            for i in range(request.num_samples)
        ]

        def work() -> tuple[_Result, dict[str, Any]]:
            unsupported = [
                name
                for name, used in (
                    ("topk_prompt_logprobs", request.topk_prompt_logprobs > 0),
                    ("topk_sample_logprobs", request.topk_sample_logprobs > 0),
                    ("target_prompt_logprobs", request.target_prompt_logprobs is not None),
                    ("prompt_alt_tokens_k", request.prompt_alt_tokens_k > 0),
                )
                if used
            ]
            if unsupported:
                raise UserError(
                    f"{', '.join(unsupported)} is not supported by this server; leave it unset"
                )
            try:
                prompt = request.prompt.to_ints()
            except ValueError:
                raise UserError(
                    "only encoded_text prompt chunks are supported by this server"
                ) from None
            params = request.sampling_params.model_dump(mode="json")
            generator = self._generator
            if request.sampling_params.seed is not None:
                generator = torch.Generator().manual_seed(request.sampling_params.seed)
            model = self._sampler_model(sampler)
            sequences = _engine.generate(
                model, sampler.base, prompt, request.num_samples, params, generator
            )
            scored = None
            if request.prompt_logprobs:
                scored = _engine.prompt_logprobs(model, prompt)
                last_n = request.prompt_logprobs_last_n
                if last_n is not None:
                    if not 1 <= last_n <= len(prompt) - 1:
                        raise UserError(
                            f"prompt_logprobs_last_n must be between 1 and {len(prompt) - 1} "
                            "(the prompt's length - 1)"
                        )
                    scored = [float("nan")] * (len(scored) - last_n) + scored[
                        len(scored) - last_n :
                    ]
            return _Result("proto", _wire.encode_sample(sequences, scored)), {
                "sample_sequence_ids": ids
            }

        return self._once(key, fail, work)


def _operation(path: str) -> str:
    """The route name: ``/api/v1/optim_step`` -> ``optim_step``, ``/api/v1/samplers/x`` ->
    ``get_sampler``, ``/api/v1/sessions/x/finish`` -> ``finish``."""
    parts = [part for part in urlsplit(path).path.split("/") if part]
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        return "unknown"
    rest = parts[2:]
    if rest[0] == "samplers" and len(rest) == 2:
        return "get_sampler"
    if rest[0] == "sessions" and rest[-1] == "finish":
        return "finish"
    if rest[0] == "training_runs" and len(rest) == 3 and rest[2] == "checkpoints":
        return "list_checkpoints"
    if rest[0] == "client" and len(rest) == 2:
        return rest[1]
    if len(rest) == 1:
        return rest[0]
    return "unknown"


def _checkpoint_name(name: str | None) -> str:
    if not name or "/" in name or name in (".", "..") or name.endswith(".partial"):
        raise _HttpError(
            400, f"checkpoint name {name!r} is not usable; give a name without '/', e.g. 'step-10'"
        )
    return name


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    owner: FakeTinkerServer

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.owner._lock:
            self.owner._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.owner
        fault = owner._count(_operation(self.path))
        mode = fault.mode if fault is not None else None
        try:
            if mode == "refuse":
                self._drop()
            elif mode == "error":
                assert fault is not None
                detail = {"detail": fault.message}
                self._send(_Reply.json(fault.status, detail, {"retry-after-ms": "20"}))
            else:
                headers = {name.lower(): value for name, value in self.headers.items()}
                fail = fault.message if fault is not None and mode == "fail" else None
                reply = owner.handle(self.command, self.path, headers, body, fail)
                if mode == "drop_response":
                    self._drop()
                else:
                    self._send(reply)
        finally:
            if fault is not None and fault.then_stop:
                owner.stop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlft.testing._fake_tinker --model NAME=FOLDER [--root DIR] [--port N]``.

    Serves in its own process (a test can kill it and start another on the same root and port)
    and prints ``url=<base_url>`` once it listens.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m rlft.testing._fake_tinker")
    parser.add_argument("--model", action="append", required=True, help="NAME=FOLDER or FOLDER")
    parser.add_argument("--root", default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-lora-rank", type=int, default=128)
    args = parser.parse_args(argv)
    models = dict(item.split("=", 1) if "=" in item else (item, item) for item in args.model)
    server = FakeTinkerServer(
        models,
        root=args.root,
        api_key=args.api_key,
        max_lora_rank=args.max_lora_rank,
        port=args.port,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with server:
        sys.stdout.write(f"url={server.url}\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
