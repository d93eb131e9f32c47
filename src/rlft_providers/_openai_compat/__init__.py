"""The OpenAI-compatible fine-tuning wire protocol over ``httpx``, shared by every backend that
speaks it: ``openai``, ``azure`` and Bedrock's open-weight endpoint.

- ``OpenAICompatClient``: base URL, fixed query, async auth hook, retries with backoff and jitter
  honouring ``Retry-After``, JSON, cursor pagination, multipart upload; an injectable transport.
- ``map_http_errors``: the one boundary where ``httpx`` failures become ``rlft.exceptions``.
- ``OpenAICompatProvider``: the ``Provider`` contract over ``/files`` and ``/fine_tuning/*``;
  a backend subclasses it with its auth, base URL and ``Dialect``.
- ``FakeFineTuningServer`` (in ``_fake_server``): a stateful fake of the API for tests.

Not public API: users name providers by id; other backends import from here.
"""

from rlft_providers._openai_compat._client import AuthHook, OpenAICompatClient, Sleep
from rlft_providers._openai_compat._errors import CallState, ErrorHint, map_http_errors, mask
from rlft_providers._openai_compat._normalise import (
    to_checkpoint,
    to_event,
    to_job,
    to_step_metrics,
)
from rlft_providers._openai_compat._provider import OpenAICompatProvider, segment
from rlft_providers._openai_compat._request import (
    IDEMPOTENCY_METADATA_KEY,
    Dialect,
    build_create_body,
    check_job_spec,
    wire_hyperparameters,
)
from rlft_providers._openai_compat._retry import RetryPolicy, parse_retry_after, retryable

__all__ = [
    "IDEMPOTENCY_METADATA_KEY",
    "AuthHook",
    "CallState",
    "Dialect",
    "ErrorHint",
    "OpenAICompatClient",
    "OpenAICompatProvider",
    "RetryPolicy",
    "Sleep",
    "build_create_body",
    "check_job_spec",
    "map_http_errors",
    "mask",
    "parse_retry_after",
    "retryable",
    "segment",
    "to_checkpoint",
    "to_event",
    "to_job",
    "to_step_metrics",
    "wire_hyperparameters",
]
