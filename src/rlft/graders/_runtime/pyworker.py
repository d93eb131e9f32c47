"""The child process that runs python graders inside the Bedrock Lambda (``LambdaPython``).

Run as a script (``python pyworker.py``), never imported by grader code. It reads one JSON
request per line on its stdin, ``{"source", "sample", "item"}``, calls ``grade(sample, item)``
and writes one JSON reply per line, ``{"score"}`` or ``{"error", "kind"}``, on the pipe it was
started with. The grader's own prints go to stderr (the Lambda's log), so they never corrupt a
reply. Any ``BaseException`` a grader raises (``SystemExit``, ``KeyboardInterrupt``) is a reply;
a grader that kills this process or runs past its deadline is killed with its whole process
group by the parent, which starts a fresh worker.

Return values are checked exactly as rlft's sandbox pool checks them, so scores match.
Standard library only: this file is copied into the Lambda package.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

_MAX_ERROR = 2000


def _tail(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-_MAX_ERROR:]


def _load(source: str, cache: dict[str, Callable[[Any, Any], Any] | str]) -> Any:
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    if digest not in cache:
        namespace: dict[str, Any] = {"__name__": "rlft_python_grader"}
        try:
            exec(compile(source, "<grader>", "exec"), namespace)  # the user's own grader
            fn = namespace.get("grade")
            cache[digest] = fn if callable(fn) else "no top-level grade(sample, item)"
        except BaseException as exc:  # noqa: BLE001 - a module that raises or exits at import
            cache[digest] = _tail(exc)
    return cache[digest]


def _call(request: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    fn = _load(request["source"], cache)
    if isinstance(fn, str):
        return {"error": fn, "kind": "exception"}
    try:
        value = fn(request["sample"], request["item"])
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
        return {"error": _tail(exc), "kind": "exception"}
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value)[:80]
        return {
            "error": f"grade() returned {type(value).__name__} {shown}, not a number",
            "kind": "invalid_return",
        }
    try:
        score = float(value)
    except BaseException as exc:  # noqa: BLE001 - a Real whose __float__ misbehaves
        return {"error": _tail(exc), "kind": "invalid_return"}
    if not math.isfinite(score):
        return {"error": f"grade() returned {score}", "kind": "invalid_return"}
    return {"score": score}


def _limit_memory() -> None:
    # A grader's memory bomb must end in MemoryError here, not in the kernel killing the whole
    # Lambda (and every other sample of the batch). RLIMIT_DATA counts the heap and anonymous
    # mappings, not the shared libraries a numpy import maps, so it fits real usage.
    megabytes = os.environ.get("RLFT_PYTHON_MEMORY_MB")
    if not megabytes:
        return
    import resource

    limit = int(megabytes) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main() -> None:
    """Serve requests until stdin closes."""
    _limit_memory()
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # graders must not import the engine's modules by accident
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # a grader reading stdin must not eat the next request
    os.dup2(2, 1)  # and its prints must not corrupt a reply: they go to the log
    sys.stdout = sys.stderr
    cache: dict[str, Any] = {}
    for line in requests:
        try:
            reply = _call(json.loads(line), cache)
        except BaseException as exc:  # noqa: BLE001 - a malformed request: say so, keep serving
            reply = {"error": _tail(exc), "kind": "exception"}
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    main()
