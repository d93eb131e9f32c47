"""Test helpers for rlft users and plugin authors.

- ``FakeProvider``: an in-memory backend with a scripted lifecycle (provider id ``fake``).
- ``ProviderConformance``: the pytest suite every provider plugin runs against itself.
- ``FakeOpenAIServer``: a loopback HTTP server speaking the OpenAI fine-tuning protocol.
- ``make_fake_distribution``: writes a real installed distribution with an ``rlft`` entry point.

``ProviderConformance`` (pytest) and ``FakeOpenAIServer`` (http.server) load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.testing._distribution import make_fake_distribution
from rlft.testing._fake import FakeProvider, FakeSettings, FakeStep

if TYPE_CHECKING:
    from rlft.testing._conformance import ProviderConformance, default_conformance_spec
    from rlft.testing._openai_server import FakeOpenAIServer

__all__ = [
    "FakeOpenAIServer",
    "FakeProvider",
    "FakeSettings",
    "FakeStep",
    "ProviderConformance",
    "default_conformance_spec",
    "make_fake_distribution",
]


def __getattr__(name: str) -> Any:
    if name in {"ProviderConformance", "default_conformance_spec"}:
        from rlft.testing import _conformance

        return getattr(_conformance, name)
    if name == "FakeOpenAIServer":
        from rlft.testing._openai_server import FakeOpenAIServer

        return FakeOpenAIServer
    raise AttributeError(f"module 'rlft.testing' has no attribute {name!r}")
