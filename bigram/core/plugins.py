"""Plugin discovery: one pluggy manager, entry points, built-ins as ordinary plugins."""

from __future__ import annotations

import contextlib
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
    errors: list[PluginError] = field(default_factory=list)  # broken plugins
    disabled: list[PluginError] = field(default_factory=list)  # plugins (or backends) whose name was taken

    def get(self, name: str) -> BackendInfo:
        if name in self.backends:
            return self.backends[name]
        available = ", ".join(sorted(self.backends)) or "none"
        broken = "".join(f"; plugin {e.plugin!r} failed to load: {e.error}" for e in self.errors)
        broken += "".join(f"; plugin {e.plugin!r} is disabled: {e.error}" for e in self.disabled)
        raise BigramError(
            f"unknown backend {name!r}; available backends: {available} "
            f"(choose one with --backend NAME, list them with `bigram backends`){broken}"
        )


BUILTIN_DIST = "bigram"  # the distribution of the built-in backends: they win any clash of names


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    return (ep.dist.name, ep.dist.version) if ep.dist is not None else ("?", "?")


def _precedence(dist: str, plugin: str) -> tuple:
    """Built-ins first, then third parties by package and name: who wins a clash never depends on install order."""
    return (dist != BUILTIN_DIST, dist, plugin)


@contextlib.contextmanager
def contained(on_error):
    """Run third-party code: what it prints goes to stderr (stdout may be --json), and anything it raises,
    SystemExit included, goes to on_error(exception) instead of ending bigram. Ctrl-C still stops."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - a plugin's sys.exit(0) must not end the command
        on_error(e)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def get_plugin_manager() -> pluggy.PluginManager:
    """A manager with the hookspecs added and every entry-point plugin registered.

    A plugin that fails to import is skipped and recorded in `pm.bigram_errors`;
    one whose name another package already took, in `pm.bigram_disabled`. Neither
    stops the others from loading.
    """
    pm = pluggy.PluginManager("bigram")
    pm.add_hookspecs(hookspecs)
    pm.bigram_errors = []  # type: ignore[attr-defined]
    pm.bigram_disabled = []  # type: ignore[attr-defined]
    pm.bigram_dists = {}  # type: ignore[attr-defined]
    for ep in sorted(_entry_points(), key=lambda ep: _precedence(_dist_of(ep)[0], ep.name)):
        dist, version = _dist_of(ep)
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            owner = pm.bigram_dists.get(ep.name, (dist,))[0]
            if owner != dist:  # another package's plugin of that name came first
                why = f"the plugin name {ep.name!r} is taken by {owner}, which is kept"
                pm.bigram_disabled.append(PluginError(ep.name, dist, f"{why}; uninstall {dist} (pip uninstall {dist})"))
            continue  # else the same entry point seen twice (e.g. an editable install)
        with contained(lambda e: pm.bigram_errors.append(PluginError(ep.name, dist, _describe(e)))):
            pm.register(ep.load(), name=ep.name)
            pm.bigram_dists[ep.name] = (dist, version)
    return pm


def load_backends() -> Registry:
    """Every backend that every plugin provides, keyed by name (the built-ins win a clash of names)."""
    pm = get_plugin_manager()
    reg = Registry(errors=list(pm.bigram_errors), disabled=list(pm.bigram_disabled))
    impls = sorted(pm.hook.bigram_backends.get_hookimpls(),
                   key=lambda impl: _precedence(pm.bigram_dists.get(impl.plugin_name, ("?",))[0], impl.plugin_name))
    # Call each implementation separately so a failure is pinned on its plugin.
    for impl in impls:
        plugin_name = impl.plugin_name
        dist, version = pm.bigram_dists.get(plugin_name, ("?", "?"))
        classes = None
        with contained(lambda e: reg.errors.append(PluginError(plugin_name, dist, _describe(e)))):
            classes = list(impl.function() or [])
        for cls in classes or []:
            _add_backend(reg, cls, plugin_name, dist, version)
    return reg


def _add_backend(reg: Registry, cls, plugin_name: str, dist: str, version: str) -> None:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        reg.errors.append(PluginError(plugin_name, dist, f"backend class {cls!r} has no name"))
    elif name in reg.backends:
        other = reg.backends[name]
        reg.disabled.append(PluginError(
            plugin_name, dist, f"its backend {name!r} has the name of one from {other.dist} (plugin "
            f"{other.plugin!r}), which is kept; uninstall {dist} (pip uninstall {dist}) or rename its backend"))
    else:
        reg.backends[name] = BackendInfo(name, cls, plugin_name, dist, version)


def backend_devices(reg: Registry, info: BackendInfo) -> list[str]:
    """info.cls.devices(); a failure (or anything but a list of names) is reported as a broken plugin, and []."""
    out: list[str] = []

    def failed(e: BaseException) -> None:
        reg.errors.append(PluginError(info.plugin, info.dist, f"{info.name}.devices() raised {_describe(e)}"))

    with contained(failed):
        devices = info.cls.devices()
        if not isinstance(devices, (list, tuple)) or not all(isinstance(d, str) for d in devices):
            raise TypeError(f"it returned {devices!r}, not a list of device names")
        out = list(devices)
    return out


def report_errors(reg: Registry, file=None) -> None:
    """One warning line per broken or disabled plugin, on stderr."""
    for e in reg.errors:
        print(f"warning: plugin {e.plugin!r} from {e.dist} failed to load: {e.error}", file=file or sys.stderr)
    for e in reg.disabled:
        print(f"warning: plugin {e.plugin!r} from {e.dist} is disabled: {e.error}", file=file or sys.stderr)
