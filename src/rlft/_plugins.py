"""The plugin host: one ``pluggy.PluginManager("rlft")`` per ``Client``, loaded on first use."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from rlft import hookspecs
from rlft.exceptions import PluginError, PluginLoadError, UnknownProviderError
from rlft.provider import ProviderRegistry, ProviderSpec

__all__ = ["PluginHost", "PluginInfo", "builtin_plugins", "find_provider", "known_providers"]

_DISTRIBUTION = "rlft"
logger = logging.getLogger("rlft")


def builtin_plugins() -> dict[str, str]:
    """The built-in plugins: rlft's own ``rlft`` entry points, read from its distribution.

    The fallback when entry-point autoloading is off: the built-ins still load, and only them.
    """
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # a bare source tree on sys.path
        logger.warning(
            "rlft is not installed, so its built-in backends cannot be found: install it "
            "(pip install -e . in a checkout)"
        )
        return {}
    return {
        entry_point.name: entry_point.value
        for entry_point in dist.entry_points
        if entry_point.group == hookspecs.PROJECT_NAME
    }


# Every spec a plugin host has registered in this process, so a provider id resolves to the
# facts of the plugin that serves it (including plugins handed to a Client in code).
_seen: dict[str, ProviderSpec] = {}
_default: PluginHost | None = None


def _default_host() -> PluginHost:
    global _default
    if _default is None:
        _default = PluginHost()
    return _default


def find_provider(name: str) -> ProviderSpec | None:
    """The spec (and so the declared facts) of the provider id ``name``, or ``None``.

    Looks at the plugins already loaded in this process first, then loads the installed ones.
    """
    spec = _seen.get(name)
    if spec is None:
        spec = _default_host().registry.get(name)
    return spec


def known_providers() -> list[str]:
    """Every provider id loaded in this process or installed, sorted."""
    return sorted(set(_seen) | set(_default_host().registry.names()))


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, for ``rlft providers`` and ``Client.plugins()``."""

    name: str
    """The entry-point (or registration) name."""
    distribution: str | None
    """The installed distribution that ships it, or ``None`` (built-in fallback, explicit)."""
    version: str | None
    providers: list[str]


class PluginHost:
    """Loads plugins once, then answers provider lookups.

    Args:
        plugins: Extra plugin objects to register (modules or instances with hookimpls).
        autoload: Scan the ``rlft`` entry points. ``None`` reads ``RLFT_DISABLE_PLUGIN_AUTOLOAD``
            when the host loads.
    """

    def __init__(self, *, plugins: Iterable[object] = (), autoload: bool | None = None) -> None:
        self._extra = list(plugins)
        self._autoload = autoload
        self._pm: pluggy.PluginManager | None = None
        self._registry: ProviderRegistry | None = None
        self._dists: dict[str, importlib.metadata.Distribution] = {}

    @property
    def manager(self) -> pluggy.PluginManager:
        """The loaded plugin manager."""
        self._load()
        assert self._pm is not None
        return self._pm

    @property
    def registry(self) -> ProviderRegistry:
        """Every provider the plugins registered."""
        self._load()
        assert self._registry is not None
        return self._registry

    def provider_spec(self, name: str) -> ProviderSpec:
        """The spec for ``name``, or ``UnknownProviderError`` with a "did you mean"."""
        spec = self.registry.get(name)
        if spec is None:
            raise UnknownProviderError(name, known=self.registry.names())
        return spec

    def plugins(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution and the providers it registered."""
        registry = self.registry
        infos = []
        for name, _plugin in self.manager.list_name_plugin():
            dist = self._dists.get(name)
            providers = sorted(spec.name for spec in registry if spec.plugin == name)
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist.metadata["Name"] if dist else None,
                    version=dist.version if dist else None,
                    providers=providers,
                )
            )
        return sorted(infos, key=lambda info: info.name)

    def _load(self) -> None:
        if self._pm is not None:
            return
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        autoload = (
            not _env_flag("RLFT_DISABLE_PLUGIN_AUTOLOAD")
            if self._autoload is None
            else self._autoload
        )
        for name in _env_list("RLFT_BLOCKED_PLUGINS"):  # read here, at load time
            pm.set_blocked(name)
        if autoload:
            self._load_entry_points(pm)
        for name, module in builtin_plugins().items():  # the fallback when autoload is off
            if not (pm.has_plugin(name) or pm.is_blocked(name)):
                pm.register(importlib.import_module(module), name=name)
        for plugin in self._extra:
            if pm.get_name(plugin) is None:
                pm.register(plugin)
        pm.check_pending()  # a misspelt hookimpl fails loudly

        registry = ProviderRegistry()
        for impl in reversed(pm.hook.rlft_register_providers.get_hookimpls()):
            registry._current_plugin = impl.plugin_name
            kwargs = {"registry": registry}
            try:
                impl.function(**{key: kwargs[key] for key in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:  # a spec that cannot even be built: fail at load, named
                raise PluginLoadError(
                    name=impl.plugin_name, value=f"rlft_register_providers: {exc}"
                ) from exc
        registry._current_plugin = ""
        self._pm, self._registry = pm, registry
        _seen.update((spec.name, spec) for spec in registry)

    def _load_entry_points(self, pm: pluggy.PluginManager) -> None:
        for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
            if pm.is_blocked(entry_point.name) or pm.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginLoadError(name=entry_point.name, value=entry_point.value) from exc
            if pm.is_registered(plugin):  # two entry points naming one module
                continue
            pm.register(plugin, name=entry_point.name)
            if entry_point.dist is not None:
                self._dists[entry_point.name] = entry_point.dist
