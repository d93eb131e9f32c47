"""Test helpers for rlft users and plugin authors.

- ``FakeProvider``: an in-memory backend with a scripted lifecycle (provider id ``fake``).
- ``ProviderConformance``: the pytest suite every provider plugin runs against itself.
- ``FakeFineTuningServer``: one fake of the OpenAI-compatible fine-tuning API, mounted in
  process (``httpx.MockTransport(server)``, a respx side effect) or over loopback HTTP
  (``with server.serve() as running: running.url``, a ``LoopbackServer``).
- ``make_fake_distribution``: writes a real installed distribution with an ``rlft`` entry point.

``ProviderConformance`` (pytest) and the fake API (httpx, http.server) load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.testing._distribution import make_fake_distribution
from rlft.testing._fake import FakeProvider, FakeSettings, FakeStep

if TYPE_CHECKING:
    from rlft.testing._conformance import ProviderConformance, default_conformance_spec
    from rlft.testing._fake_openai_api import FakeFineTuningServer, Flavour
    from rlft.testing._fake_tinker import FakeTinkerServer
    from rlft.testing._loopback import LoopbackServer

__all__ = [
    "FakeFineTuningServer",
    "FakeProvider",
    "FakeSettings",
    "FakeTinkerServer",
    "FakeStep",
    "Flavour",
    "LoopbackServer",
    "ProviderConformance",
    "default_conformance_spec",
    "make_fake_distribution",
]


def __getattr__(name: str) -> Any:
    if name in {"ProviderConformance", "default_conformance_spec"}:
        from rlft.testing import _conformance

        return getattr(_conformance, name)
    if name in {"FakeFineTuningServer", "Flavour"}:
        from rlft.testing import _fake_openai_api

        return getattr(_fake_openai_api, name)
    if name == "LoopbackServer":
        from rlft.testing._loopback import LoopbackServer

        return LoopbackServer
    if name == "FakeTinkerServer":  # torch, peft and the tinker SDK load on first access
        from rlft.testing._fake_tinker import FakeTinkerServer

        return FakeTinkerServer
    raise AttributeError(f"module 'rlft.testing' has no attribute {name!r}")
