"""The ``fake`` provider's plugin module: registered like any third-party plugin."""

from __future__ import annotations

from rlft.hookspecs import hookimpl
from rlft.provider import ProviderRegistry, ProviderSpec
from rlft.testing._fake import FakeSettings


@hookimpl
def rlft_register_providers(registry: ProviderRegistry) -> None:
    registry.add(
        ProviderSpec(
            name="fake",
            settings=FakeSettings,
            factory="rlft.testing._fake:FakeProvider",
            description="in-memory backend with a scripted lifecycle, for tests and dry runs",
            # No facts to declare: it speaks rlft's neutral status words, takes the neutral
            # grader and the generic dataset checks, and bills nothing.
        )
    )
