"""Plugin discovery through Python entry points, one group per extension point.

Built-in plugins are listed once, in ``plugin_table.py``: ``setup.py`` declares them from it as
entry points like any third-party one, and this module reads it too so that the core works
from a source tree that was never installed.
A plugin that fails to import is reported (and the others still load); an unknown name fails
with the list of available names.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from .plugin_table import BUILTINS, GROUPS  # the one list (setup.py reads it as well)

_LOG = logging.getLogger(__name__)


class PluginError(ValueError):
    """An unknown plugin name, or a plugin that cannot be loaded."""


def _group(kind: str) -> str:
    if kind in GROUPS:
        return GROUPS[kind]
    if kind in GROUPS.values():
        return kind
    raise PluginError(f"unknown plugin kind {kind!r}; kinds: {', '.join(GROUPS)}")


def available(kind: str) -> dict[str, str]:
    """Return {name: "module:attr"} of every plugin of ``kind`` (built-in and installed)."""
    group = _group(kind)
    found = dict(BUILTINS.get(group, {}))
    for ep in entry_points(group=group):
        found[ep.name] = ep.value
    return dict(sorted(found.items()))


def load_class(kind: str, name: str) -> type:
    """Import and return the plugin class ``name`` of ``kind``."""
    plugins = available(kind)
    if name not in plugins:
        raise PluginError(f"unknown {kind} plugin {name!r}; available: "
                          f"{', '.join(plugins) or '(none)'}")
    target = plugins[name]
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # a broken plugin must not hide the others
        _LOG.warning("%s plugin %r (%s) failed to load: %s", kind, name, target, exc)
        raise PluginError(f"{kind} plugin {name!r} ({target}) failed to load: {exc}") from exc
    return obj


def create(kind: str, name: str, **params: Any) -> Any:
    """Instantiate the plugin ``name`` of ``kind`` with keyword ``params``."""
    return load_class(kind, name)(**params)
