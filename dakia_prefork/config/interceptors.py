"""Interceptor entries of a gateway: known names, resolvable filters.

Only the entry is checked here; what goes inside ``config``, ``rewrite`` and ``response``
belongs to each interceptor and is passed through untouched.
"""
from __future__ import annotations

from collections.abc import Container
from typing import Any

from .findings import Findings
from .location import child

KNOWN_INTERCEPTORS: frozenset[str] = frozenset({
    "server_version", "request_id", "basic_auth", "key_auth", "jwt_auth",
    "request_rewrite", "response_rewrite", "short_circuit", "use_file", "try_file",
    "cors", "ip_restriction", "rate_limiter", "controller",
})
"""The built-in interceptor names a config may use."""


def check_interceptors(interceptors: list[dict[str, Any]], path: str,
                       filter_names: Container[str], findings: Findings) -> None:
    """Record an error for every unknown interceptor name and unresolved filter."""
    for index, entry in enumerate(interceptors):
        entry_path = child(path, index)
        if entry["name"] not in KNOWN_INTERCEPTORS:
            findings.error(child(entry_path, "name"),
                           f"unknown interceptor {entry['name']!r} "
                           f"(known: {', '.join(sorted(KNOWN_INTERCEPTORS))})")
        filter_name = entry["filter"]
        if filter_name is not None and filter_name not in filter_names:
            findings.error(child(entry_path, "filter"), f"no filter named {filter_name!r}")
