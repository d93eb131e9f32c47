"""Test helpers for rlft users and plugin authors.

- ``FakeProvider``: an in-memory backend with a scripted lifecycle (provider id ``fake``).
- ``ProviderConformance``: the pytest suite every provider plugin runs against itself.
- ``make_fake_distribution``: writes a real installed distribution with an ``rlft`` entry point.

``ProviderConformance`` imports pytest, so it loads on first access only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.testing._distribution import make_fake_distribution
from rlft.testing._fake import FakeProvider, FakeSettings

if TYPE_CHECKING:
    from rlft.testing._conformance import ProviderConformance, default_conformance_spec

__all__ = [
    "FakeProvider",
    "FakeSettings",
    "ProviderConformance",
    "default_conformance_spec",
    "make_fake_distribution",
]


def __getattr__(name: str) -> Any:
    if name in {"ProviderConformance", "default_conformance_spec"}:
        from rlft.testing import _conformance

        return getattr(_conformance, name)
    raise AttributeError(f"module 'rlft.testing' has no attribute {name!r}")
