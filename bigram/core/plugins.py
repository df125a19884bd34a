"""Plugin discovery: one pluggy manager, entry points, built-ins as ordinary plugins."""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from bigram.core import hookspecs
from bigram.core.errors import BigramError

ENTRY_POINT_GROUP = "bigram.backends"


@dataclass
class BackendInfo:
    """A discovered backend and where it came from."""

    name: str
    cls: Any
    plugin: str  # entry-point name
    dist: str  # distribution that provides it
    version: str


@dataclass
class PluginError:
    """A plugin that failed to load, kept to be reported instead of raised."""

    plugin: str
    dist: str
    error: str


@dataclass
class Registry:
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)

    def get(self, name: str) -> BackendInfo:
        if name in self.backends:
            return self.backends[name]
        available = ", ".join(sorted(self.backends)) or "none"
        broken = "".join(f"; plugin {e.plugin!r} failed to load: {e.error}" for e in self.errors)
        raise BigramError(
            f"unknown backend {name!r}; available backends: {available} "
            f"(choose one with --backend NAME, list them with `bigram backends`){broken}"
        )


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def get_plugin_manager() -> pluggy.PluginManager:
    """A manager with the hookspecs added and every entry-point plugin registered.

    A plugin that fails to import is skipped and recorded in `pm.bigram_errors`;
    it never stops the others from loading.
    """
    pm = pluggy.PluginManager("bigram")
    pm.add_hookspecs(hookspecs)
    pm.bigram_errors = []  # type: ignore[attr-defined]
    pm.bigram_dists = {}  # type: ignore[attr-defined]
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue  # the same entry point seen twice (e.g. an editable install)
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # noqa: BLE001 - any failure of third-party code is contained
            pm.bigram_errors.append(PluginError(ep.name, dist, f"{type(e).__name__}: {e}"))
            continue
        pm.bigram_dists[ep.name] = (dist, version)
    return pm


def load_backends() -> Registry:
    """Every backend that every plugin provides, keyed by name."""
    pm = get_plugin_manager()
    reg = Registry(errors=list(pm.bigram_errors))
    # Call each implementation separately so a failure is pinned on its plugin.
    for impl in pm.hook.bigram_backends.get_hookimpls():
        plugin_name = impl.plugin_name
        dist, version = pm.bigram_dists.get(plugin_name, ("?", "?"))
        try:
            classes = list(impl.function() or [])
        except Exception as e:  # noqa: BLE001
            reg.errors.append(PluginError(plugin_name, dist, f"{type(e).__name__}: {e}"))
            continue
        for cls in classes:
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                reg.errors.append(PluginError(plugin_name, dist, f"backend class {cls!r} has no name"))
                continue
            if name in reg.backends:
                other = reg.backends[name]
                raise BigramError(
                    f"two plugins provide a backend named {name!r}: {other.dist} ({other.plugin}) and "
                    f"{dist} ({plugin_name}); uninstall one of them (pip uninstall ...)"
                )
            reg.backends[name] = BackendInfo(name, cls, plugin_name, dist, version)
    return reg


def report_errors(reg: Registry, file=None) -> None:
    """One warning line per broken plugin, on stderr."""
    for e in reg.errors:
        print(f"warning: plugin {e.plugin!r} from {e.dist} failed to load: {e.error}", file=file or sys.stderr)
