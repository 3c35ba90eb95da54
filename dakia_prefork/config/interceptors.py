"""Interceptor entries of a gateway: known names, resolvable filters, and each one's config.

schema.json has already checked the shape of every built-in's ``config`` (and of Dakia's
``rewrite`` / ``response`` maps where it takes them). What a schema cannot say (a regex
compiles, a password hash parses, an htpasswd file reads, a CIDR has no host bits) is
each interceptor's own ``check``, run here for enabled and disabled entries alike, so
turning one on later cannot fail on a config that passed. A check may normalise its
entry in place: plaintext passwords and keys become hashes, relative paths absolute, so
the stored, normalised config never holds a plaintext secret.

Entries of names this version knows but does not implement (``controller``) pass
through untouched; ``master/checks.py`` refuses them when they are enabled. Names that are
not built in are plugins (plugins/loader.py): a ``class: "module:Class"`` entry, or a name
an installed package declares in the ``dakia_prefork.interceptors`` entry-point group; a
plugin's ``config_schema``, if it has one, is checked before its own ``check``.
"""
from __future__ import annotations

from collections.abc import Container
from typing import Any

from ..interceptors.registry import GROUP, NAMES
from .findings import Findings
from .location import child

KNOWN_INTERCEPTORS: frozenset[str] = NAMES
"""The built-in interceptor names a config may use (interceptors/registry.py)."""


def check_interceptors(interceptors: list[dict[str, Any]], path: str,
                       filter_names: Container[str], findings: Findings,
                       base_dir: str = "/") -> None:
    """Record an error for every unknown interceptor name, unresolved filter and config
    problem; relative paths in interceptor configs resolve against ``base_dir``.

    Only the implementations the entries name are imported, here and not with config/:
    a config without interceptors loads none."""
    if not interceptors:
        return
    from ..plugins.loader import PluginError, check_entry, implementation
    for index, entry in enumerate(interceptors):
        entry_path = child(path, index)
        try:
            found = implementation(entry)
        except PluginError as exc:
            findings.error(child(entry_path, exc.where), exc.message)
            found = None
        else:
            if found is None and entry["name"] not in KNOWN_INTERCEPTORS:
                findings.error(child(entry_path, "name"),
                               f"unknown interceptor {entry['name']!r} "
                               f"(known: {', '.join(sorted(KNOWN_INTERCEPTORS))}; or a plugin: "
                               f"class: 'module:Class', or a name declared in {GROUP})")
        filter_name = entry["filter"]
        if filter_name is not None and filter_name not in filter_names:
            findings.error(child(entry_path, "filter"), f"no filter named {filter_name!r}")
        if found is not None:
            for where, message in check_entry(found, entry, base_dir):
                findings.error(f"{entry_path}.{where}", message)
    if any(entry["name"] == "rate_limiter" for entry in interceptors):
        from ..interceptors.rate_limiter import consumer_key_notices
        for index, message in consumer_key_notices(interceptors):
            findings.notice(f"{child(path, index)}.config.key", message)
