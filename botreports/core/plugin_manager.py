"""Plugin manager construction and the registries built from ``register_*`` hooks.

Each ``Reports`` instance owns one ``pluggy.PluginManager``. Order: built-ins,
then entry points of group ``botreports``, then the embedder's plugins, so an
embedder's firstresult hooks (``authenticate``) are asked first.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence

import pluggy

from .. import hookspecs
from .declarations import check_contribution, did_you_mean, unknown_hook_message
from .errors import PluginError

ENTRYPOINT_GROUP = "botreports"
log = logging.getLogger("botreports.plugins")


def _names_from_env(variable: str) -> Optional[List[str]]:
    value = os.environ.get(variable)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def build_plugin_manager(default_plugins: Sequence[str], plugins: Iterable = (),
                         load_entrypoints: bool = True, disable: Iterable[str] = ()) -> pluggy.PluginManager:
    """A new manager with the built-ins (dotted module names), entry points and ``plugins``.

    ``BOTREPORTS_LOAD_PLUGINS`` (comma-separated entry point names, empty =
    none) limits which entry points load; ``BOTREPORTS_DISABLE_PLUGINS`` and
    ``disable`` block plugins by name, built-ins included;
    ``BOTREPORTS_TRACE_PLUGINS`` writes every hook call to stderr.
    """
    pm = pluggy.PluginManager("botreports")
    pm.add_hookspecs(hookspecs)
    blocked = (_names_from_env("BOTREPORTS_DISABLE_PLUGINS") or []) + list(disable)
    for name in blocked:
        pm.set_blocked(name)
    plugins = list(plugins)
    known = list(default_plugins) + [entry_point.name for entry_point in (
        importlib.metadata.entry_points(group=ENTRYPOINT_GROUP) if load_entrypoints else ())]
    known += [getattr(plugin, "__name__", None) or type(plugin).__name__ for plugin in plugins]
    for name in blocked:
        if name not in known:  # a typo would leave the plugin running, unnoticed
            log.warning("BOTREPORTS_DISABLE_PLUGINS names %r, which is no built-in or installed plugin%s",
                        name, did_you_mean(name, known))
    for module_name in default_plugins:
        if pm.is_blocked(module_name):
            continue
        pm.register(importlib.import_module(module_name), module_name)
    if load_entrypoints:
        allowed = _names_from_env("BOTREPORTS_LOAD_PLUGINS")
        for entry_point in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            if pm.is_blocked(entry_point.name) or pm.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken third-party package must say who it is
                raise PluginError(f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc}") from exc
            pm.register(plugin, entry_point.name)
            pm._plugin_distinfo.append((plugin, entry_point.dist))  # noqa: SLF001 - as pluggy does it
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.get_plugin(name) is not None or pm.is_blocked(name):
            name = f"{name}-{id(plugin):x}"
        pm.register(plugin, name)
    check_hooks(pm)
    if os.environ.get("BOTREPORTS_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
        pm.enable_tracing()
    return pm


def check_hooks(pm: pluggy.PluginManager) -> None:
    """``PluginError`` naming each plugin that implements a hook no specification declares, with
    the nearest hook name: a misspelt hook would otherwise be dead code."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        callers = dict(vars(pm.hook))
        known = [name for name, caller in callers.items() if getattr(caller, "spec", None) is not None]
        unknown = {name: [impl.plugin_name for impl in caller.get_hookimpls() if not impl.optionalhook]
                   for name, caller in callers.items()
                   if getattr(caller, "spec", None) is None and hasattr(caller, "get_hookimpls")}
        unknown = {name: plugins for name, plugins in unknown.items() if plugins}
        raise PluginError(unknown_hook_message(known, unknown) if unknown else f"unknown hook in a plugin: {exc}") \
            from exc


def plugin_origin(pm: pluggy.PluginManager, plugin) -> str:
    """Where a plugin came from: ``builtin``, the distribution it was installed with, or ``embedder``."""
    name = pm.get_name(plugin) or ""
    if name.startswith("botreports.plugins."):
        return "builtin"
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return f"{dist.metadata['name']} {dist.version}"
    return "embedder"


def collect_registry(pm: pluggy.PluginManager, hook_name: str, key: str, **arguments) -> Dict[str, tuple]:
    """Call ``register_<x>`` on every plugin, in registration order, through pluggy (so tracing
    and hook monitoring see each call, and ``arguments`` reach the implementations that name them).

    Returns ``{name: (object, plugin_name)}``. Each object is checked (``declarations``) and a
    name registered twice stops start-up; both errors name the plugins concerned.
    """
    registry: Dict[str, tuple] = {}
    hook = getattr(pm.hook, hook_name)
    # get_hookimpls() is in registration order (pluggy *calls* them in reverse): one plugin at a
    # time, so each result is known to come from its plugin.
    implementations = [impl for impl in hook.get_hookimpls() if not (impl.hookwrapper or impl.wrapper)]
    for impl in implementations:
        others = [other.plugin for other in implementations if other is not impl]
        results = pm.subset_hook_caller(hook_name, remove_plugins=others)(**arguments)
        result = results[0] if results else None
        if result is None:
            continue
        items = result if isinstance(result, (list, tuple)) else [result]
        for item in items:
            check_contribution(hook_name, impl.plugin_name, key, item)
            name = getattr(item, key)
            if name in registry:
                raise PluginError(
                    f"{hook_name}: {key} {name!r} is registered by both "
                    f"{registry[name][1]!r} and {impl.plugin_name!r}")
            registry[name] = (item, impl.plugin_name)
    return registry
