"""Build a backend for any service that speaks OpenAI's fine-tuning API.

Many services copy OpenAI's ``/files`` and ``/fine_tuning/jobs`` endpoints. rlft's built-in
``openai`` and ``azure`` backends, and Bedrock's open-weight endpoint, share one wire layer for
them; this module is the stable way for a third-party plugin to reuse it (``rlft_providers.*``
is not public API). A plugin subclasses ``OpenAICompatProvider``, builds an
``OpenAICompatClient`` with its base URL and auth, and declares a ``Dialect``:

```python
from rlft.openai_compat import Dialect, OpenAICompatClient, OpenAICompatProvider

class AcmeProvider(OpenAICompatProvider):
    name = "acme"
    capabilities = Capabilities(cancel_job=True, list_events=True, list_checkpoints=True, ...)
    # its status words, dataset rules and grader format: declared in its ProviderSpec
    dialect = Dialect(provider="acme", requires_validation=False)

    def __init__(self, *, settings: AcmeSettings, transport=None) -> None:
        client = OpenAICompatClient(provider="acme", base_url=settings.base_url, auth=...)
        super().__init__(settings=settings, client=client)
```

The fake of this API for tests is ``rlft.testing.FakeFineTuningServer`` (this module holds no
testing code). ``docs/writing-a-provider.md`` walks through a complete plugin,
``examples/plugin`` (rlft-acme).

Importing this module imports ``httpx`` and nothing heavier; ``import rlft`` never imports it.
"""

from __future__ import annotations

from rlft.openai_compat._client import AuthHook, OpenAICompatClient, Sleep
from rlft.openai_compat._errors import CallState, ErrorHint, map_http_errors, mask
from rlft.openai_compat._normalise import to_checkpoint, to_event, to_job, to_step_metrics
from rlft.openai_compat._provider import OpenAICompatProvider, segment
from rlft.openai_compat._request import (
    IDEMPOTENCY_METADATA_KEY,
    Dialect,
    body_enum,
    build_create_body,
    check_job_spec,
    idempotency_tag,
    wire_hyperparameters,
)
from rlft.openai_compat._retry import RetryPolicy, parse_retry_after, retryable

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
    "body_enum",
    "build_create_body",
    "check_job_spec",
    "idempotency_tag",
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
