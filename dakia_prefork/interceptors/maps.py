"""Dakia's flat maps (``rewrite:``, ``response:``): ``header.<name>: value`` and friends.

Dakia writes what an interceptor changes as one flat map whose keys name the part, some
with a side prefix: ``header.x-a``, ``res.header.x-a`` and ``ds.res.header.x-a`` are the
same response header. This module reads such a map into its parts; schema.json has
already checked that every key is one the interceptor knows.
"""
from __future__ import annotations

from typing import Any


def strip_side(key: str, prefixes: tuple[str, ...]) -> str:
    """``key`` without the first of ``prefixes`` it starts with (longest listed first)."""
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def split_map(mapping: dict[str, Any], prefixes: tuple[str, ...]
              ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(plain keys, {"header": {name: value}, "query": {...}})`` of a Dakia map.

    A plain key is one without a dot after the prefix (``status``, ``body``, ``path``).
    """
    plain: dict[str, Any] = {}
    dotted: dict[str, dict[str, Any]] = {}
    for key, value in mapping.items():
        part, sep, name = strip_side(key, prefixes).partition(".")
        if sep:
            dotted.setdefault(part, {})[name] = value
        else:
            plain[part] = value
    return plain, dotted
