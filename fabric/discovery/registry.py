"""The registry of discovery strategies by name, including third-party plugins from entry points.

Built-in strategies register themselves at import of :mod:`fabric.discovery`; those with a heavier client
library (``consul``, ``kubernetes``: :data:`LAZY_BUILTINS`) are imported the first time they are asked for,
and are listed by :meth:`DiscoveryRegistry.names` all the same. A third-party package adds
a strategy by declaring an entry point in the group ``foundation.discovery``::

    [options.entry_points]
    foundation.discovery =
        consul = my_package.consul:ConsulPlugin

The entry point must load a :class:`~fabric.discovery.base.DiscoveryPlugin` subclass; its entry-point
name is the strategy name. Entry points are read lazily, the first time a name is not found among the
registered ones (or when :meth:`DiscoveryRegistry.load_entry_points` is called). Built-ins win over
entry points with the same name, so an installed package cannot silently replace them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .base import (
    Clock,
    ConfigurationError,
    DiscoveryPlugin,
    PluginLoadError,
    UnknownPluginError,
    config_from_mapping,
)

__all__ = ["ENTRY_POINT_GROUP", "LAZY_BUILTINS", "DiscoveryRegistry"]

#: The importlib.metadata entry-point group third-party discovery plugins register under.
ENTRY_POINT_GROUP = "foundation.discovery"

#: Built-in strategies imported on first use (``module:Class``), so importing the fabric does not load
#: their HTTP client code. They are built-ins: entry points cannot replace them.
LAZY_BUILTINS: Mapping[str, str] = {
    "consul": "fabric.discovery.consul:ConsulPlugin",
    "kubernetes": "fabric.discovery.kubernetes:KubernetesPlugin",
}

_log = logging.getLogger("fabric.discovery")


class DiscoveryRegistry:
    """Strategy name -> :class:`DiscoveryPlugin` subclass. Not thread-safe: fill it at start-up."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self._plugins: dict[str, type[DiscoveryPlugin]] = {}
        self._lazy: dict[str, str] = dict(LAZY_BUILTINS)
        self._group = group
        self._entry_points_loaded = False
        #: Entry points that failed to load: name -> reason (shown by the CLI's doctor).
        self.load_errors: dict[str, str] = {}

    def register(self, plugin: type[DiscoveryPlugin], name: str | None = None, *, replace: bool = False) -> None:
        """Register ``plugin`` under ``name`` (default ``plugin.name``).

        Raises :class:`ConfigurationError` if the name is taken (unless ``replace``) or ``plugin`` is not
        a DiscoveryPlugin subclass with a config_type.
        """
        if not (isinstance(plugin, type) and issubclass(plugin, DiscoveryPlugin)):
            raise ConfigurationError(f"{plugin!r} is not a DiscoveryPlugin subclass")
        key = name or plugin.name
        if not key:
            raise ConfigurationError(f"{plugin.__name__} has no name")
        if not hasattr(plugin, "config_type"):
            raise ConfigurationError(f"{plugin.__name__} has no config_type")
        if key in self._plugins and not replace and self._plugins[key] is not plugin:
            raise ConfigurationError(f"discovery strategy {key!r} is already registered")
        self._plugins[key] = plugin
        self._lazy.pop(key, None)

    def load_entry_points(self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> None:
        """Import every plugin in the entry-point group (or the given entry points) and register it.

        A plugin that fails to import, or is not a DiscoveryPlugin, is logged and recorded in
        :attr:`load_errors`; it never stops the others. Names already registered are kept.
        """
        self._entry_points_loaded = True
        eps = entry_points if entry_points is not None else importlib.metadata.entry_points(group=self._group)
        for ep in eps:
            if ep.name in self._plugins or ep.name in self._lazy:
                continue
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken third-party package must not stop discovery
                self.load_errors[ep.name] = f"import failed: {exc!r}"
                _log.warning("discovery plugin %s (%s) failed to load: %r", ep.name, ep.value, exc)
                continue
            try:
                self.register(loaded, ep.name)
            except ConfigurationError as exc:
                self.load_errors[ep.name] = str(exc)
                _log.warning("discovery plugin %s (%s) rejected: %s", ep.name, ep.value, exc)

    def get(self, name: str) -> type[DiscoveryPlugin]:
        """Return the plugin class registered as ``name``, loading entry points on first miss.

        Raises :class:`UnknownPluginError` (naming the known strategies) or :class:`PluginLoadError`
        when the entry point exists but failed to load.
        """
        if name not in self._plugins and name in self._lazy:
            self._load_lazy(name)
        if name not in self._plugins and not self._entry_points_loaded:
            self.load_entry_points()
        try:
            return self._plugins[name]
        except KeyError:
            if name in self.load_errors:
                raise PluginLoadError(f"discovery strategy {name!r}: {self.load_errors[name]}") from None
            raise UnknownPluginError(
                f"unknown discovery strategy {name!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Sorted names of the registered strategies (lazy built-ins too; entry points once loaded)."""
        return sorted({*self._plugins, *self._lazy})

    def _load_lazy(self, name: str) -> None:
        module_name, _, attr = self._lazy[name].partition(":")
        try:
            plugin = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:  # a broken install: only this strategy is unavailable
            self.load_errors[name] = f"import failed: {exc!r}"
            raise PluginLoadError(f"discovery strategy {name!r}: import failed: {exc}") from exc
        self.register(plugin, name)

    def make_config(self, name: str, options: Mapping[str, Any] | Any = None) -> Any:
        """Build strategy ``name``'s config from a mapping (or pass a config instance through)."""
        plugin = self.get(name)
        if options is None:
            return plugin.config_type()
        if isinstance(options, plugin.config_type):
            return options
        if isinstance(options, Mapping):
            return config_from_mapping(plugin.config_type, options)
        raise ConfigurationError(f"options for {name!r} must be a mapping or {plugin.config_type.__name__}")

    def create(
        self,
        name: str,
        options: Mapping[str, Any] | Any = None,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> DiscoveryPlugin:
        """Instantiate strategy ``name`` with a config built by :meth:`make_config`; not started yet."""
        plugin = self.get(name)
        config = self.make_config(name, options)
        factory = getattr(plugin, "from_registry", None)
        if factory is not None:  # composite strategies (multi) build their children from this registry
            result: DiscoveryPlugin = factory(config, registry=self, clock=clock, logger=logger)
            return result
        return plugin(config, clock=clock, logger=logger)
