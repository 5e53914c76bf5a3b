"""Adapter discovery through pluggy and the ``annobridge`` entry-point group.

Built-in adapters are registered through the very same entry points a
third-party package uses (see ``pyproject.toml``), so there is one path only.
An entry point that fails to import is remembered and reported by
``annobridge adapters`` instead of breaking every command.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pluggy

from . import hookspecs
from .adapter import Adapter, AdapterURL
from .config import AdapterConfig
from .errors import AdapterNotInstalledError, UnknownAdapterError, UsageError

ENTRY_POINT_GROUP = "annobridge"


@dataclass(frozen=True)
class KnownAdapter:
    """A scheme whose adapter lives in its own distribution (fsspec's ``known_implementations``)."""

    distribution: str
    #: the folder of this checkout that holds it, for installing from source
    folder: str


#: Schemes annobridge knows of but does not ship in the core. A URL naming one of them without its
#: package installed gets the exact line that installs it, instead of "no adapter".
KNOWN_ADAPTERS: dict[str, KnownAdapter] = {
    "prodigy": KnownAdapter("annobridge-prodigy", "adapters/prodigy"),
    "labelstudio": KnownAdapter("annobridge-labelstudio", "adapters/labelstudio"),
    "doccano": KnownAdapter("annobridge-doccano", "adapters/doccano"),
    "argilla": KnownAdapter("annobridge-argilla", "adapters/argilla"),
}


@dataclass(frozen=True)
class AdapterInfo:
    scheme: str
    adapter: type[Adapter]
    plugin: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class PluginError:
    entry_point: str
    error: str


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("annobridge")
        self.pm.add_hookspecs(hookspecs)
        self.errors: list[PluginError] = []
        self._dist_of_plugin: dict[str, tuple[str | None, str | None]] = {}

    def load_entry_points(self, name: str | None = None) -> None:
        """Import and register plugins from entry points (only the one called ``name`` if given)."""
        eps = importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in eps:
            if name is not None and ep.name != name:
                continue
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.errors.append(PluginError(f"{ep.name} = {ep.value}", f"{type(exc).__name__}: {exc}"))
                continue
            self.pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            self._dist_of_plugin[ep.name] = (dist.name if dist else None, dist.version if dist else None)

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object directly (tests, notebooks)."""
        self.pm.register(plugin, name=name)

    def adapters(self) -> dict[str, AdapterInfo]:
        found: dict[str, AdapterInfo] = {}
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin) or repr(plugin)
            dist, version = self._dist_of_plugin.get(name, (None, None))
            classes: list[type[Adapter]] = []
            hook = getattr(plugin, "register_adapters", None)
            if hook is None:
                continue
            hook(register=classes.append)
            for cls in classes:
                if not (isinstance(cls, type) and issubclass(cls, Adapter)):
                    self.errors.append(PluginError(name, f"registered {cls!r}, which is not an Adapter subclass"))
                    continue
                found[cls.scheme] = AdapterInfo(cls.scheme, cls, name, dist, version)
        return dict(sorted(found.items()))


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """Every installed plugin, loaded."""
    registry = Registry()
    registry.load_entry_points()
    return registry


_partial = Registry()


def adapter_class(scheme: str) -> type[Adapter]:
    # Fast path: a plugin whose entry point is named like its scheme (the convention, and how the
    # built-ins are declared) is imported alone, so opening jsonl: does not import every tool's client.
    if get_registry.cache_info().currsize == 0:
        _partial.load_entry_points(scheme)
        found = _partial.adapters().get(scheme)
        if found is not None:
            return found.adapter
    adapters = get_registry().adapters()
    try:
        return adapters[scheme].adapter
    except KeyError:
        pass
    known = KNOWN_ADAPTERS.get(scheme)
    if known is not None:
        raise AdapterNotInstalledError(scheme, known.distribution, known.folder) from None
    installed = ", ".join(adapters) or "none"
    raise UnknownAdapterError(
        f"No adapter for '{scheme}:' (installed: {installed}). 'annobridge adapters' lists them; "
        f"the tool adapters are packages of their own: {', '.join(k.distribution for k in KNOWN_ADAPTERS.values())}."
    ) from None


def open_adapter(url: str | AdapterURL, config: AdapterConfig | None = None) -> Adapter:
    """Open the adapter a URL-like string names: ``open_adapter("prodigy:prodigy.db?dataset=news")``."""
    parsed = url if isinstance(url, AdapterURL) else AdapterURL.parse(url)
    cls = adapter_class(parsed.scheme)
    cls.check_dependencies()
    try:
        return cls(parsed, config)
    except UsageError:
        raise
    except (ValueError, KeyError) as exc:
        raise UsageError(f"{parsed}: {exc}") from None
