"""Which class implements an interceptor entry: a built-in, a ``class:`` path, an entry point.

::

    interceptors:
      - name: tenant_check                       # a name of your choosing
        class: "mypkg.checks:TenantCheck"        # module:attribute, importable by the gateway
        config: {tenants: [acme]}
      - name: example_tenant                     # a name declared by an installed package:
        config: {tenants: [acme]}                #   [project.entry-points."dakia_prefork.interceptors"]
                                                 #   example_tenant = "pkg.mod:Class"

A ``class:`` entry must not reuse a built-in's name (that would read as the built-in). A
name that is neither built in nor given a class is looked up in the entry-point group; two
installed distributions declaring the same name is an error rather than a coin toss.

The class must subclass ``Interceptor``. If it sets ``config_schema`` (a JSON Schema, draft
2020-12, for its ``config``), the config is validated against it when the config loads and
every violation is reported with its path (``gateways[0].interceptors[2].config.tenants[0]:
...``), before the class's own ``check``.

Importing a plugin runs its code in the master as well as in the workers (the master
builds every chain to check a config before publishing it), and a module is imported once
per process: a changed plugin module takes effect when workers are restarted (``dakia-master
upgrade``), not on reload.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from ..interceptors.base import REGISTRY, Interceptor, Problem
from ..interceptors.registry import GROUP, NAMES as BUILTIN_NAMES

__all__ = ["GROUP", "PluginError", "check_entry", "implementation"]


class PluginError(ValueError):
    """An entry's implementation cannot be loaded; ``where`` is ``name`` or ``class``."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def implementation(entry: dict[str, Any]) -> type[Interceptor] | None:
    """The class for ``entry``; None for a built-in name this version does not implement,
    or a name nothing declares. Raises PluginError when a class or entry point is named
    but cannot be used."""
    name = entry["name"]
    path = entry.get("class")
    if path is not None:
        if name in REGISTRY or name in BUILTIN_NAMES:
            raise PluginError("name", f"{name!r} is a built-in interceptor; give this class "
                                      "entry a name of its own")
        return _checked(_import(path), "class", path)
    if name in REGISTRY:
        return REGISTRY[name]            # a built-in's module is imported here, on first use
    if name in BUILTIN_NAMES:
        return None
    return _entry_point(name)


def _import(path: str) -> Any:
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError("class", f"{path!r} is not 'module:Class'")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a plugin's import may fail in any way
        raise PluginError("class", f"cannot import {module_name!r}: "
                                   f"{type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise PluginError("class", f"{module_name!r} has no {attribute!r}") from None
    return value


def _entry_point(name: str) -> type[Interceptor] | None:
    found = list(metadata.entry_points(group=GROUP, name=name))
    if not found:
        return None
    if len({point.value for point in found}) > 1:
        sources = ", ".join(sorted(point.value for point in found))
        raise PluginError("name", f"several installed packages declare {name!r} in "
                                  f"{GROUP}: {sources}")
    try:
        value = found[0].load()
    except Exception as exc:  # noqa: BLE001
        raise PluginError("name", f"the entry point {name} = {found[0].value} cannot be "
                                  f"loaded: {type(exc).__name__}: {exc}") from None
    return _checked(value, "name", found[0].value)


def _checked(value: Any, where: str, source: str) -> type[Interceptor]:
    if not (isinstance(value, type) and issubclass(value, Interceptor)):
        raise PluginError(where, f"{source} is not a subclass of "
                                 "dakia_prefork.interceptors.Interceptor")
    return value


def check_entry(cls: type[Interceptor], entry: dict[str, Any], base_dir: str) -> list[Problem]:
    """The class's ``config_schema`` violations (if it declares one), else its ``check``."""
    schema = getattr(cls, "config_schema", None)
    if schema is not None:
        from ..config.schema import problems_against
        found = problems_against(schema, entry.get("config", {}))
        if found:
            return [(f"config.{where}" if where else "config", message)
                    for where, message in found]
    return cls.check(entry, base_dir)
