"""The hooks a plugin can implement. Every hook is documented in ``docs/hooks.md``.

A plugin is a module (found through the ``rlft`` entry-point group) with functions decorated by
``rlft.hookimpl``. A hookimpl may accept fewer arguments than its spec, so hooks can grow
arguments without breaking plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from rlft.provider import ProviderRegistry

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "rlft_register_providers"]

PROJECT_NAME = "rlft"
"""The pluggy project name, which is also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def rlft_register_providers(registry: ProviderRegistry) -> None:
    """Register backends by adding ``ProviderSpec`` objects to ``registry``.

    Called once per plugin host (one per ``rlft.Client``), when the first provider is looked up.
    Import nothing heavy here: ``ProviderSpec.factory`` names the provider class as a string, and
    the backend's facts (status words, dataset rules, grader format, rates, ...) are plain data.

    Args:
        registry: The typed registry; ``registry.add(spec)`` raises ``DuplicateProviderError``
            when the name is taken, and ``PluginLoadError`` (naming the plugin and the field)
            when a declared fact is malformed.
    """
