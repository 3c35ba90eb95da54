"""Locations inside a config document, written ``gateways[0].routers[1].filter``.

Keys are joined with dots and list indices written ``[i]``; a top-level key stands alone.
Problems are sorted by location so a report reads in document order whatever order the
checks ran in.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

TOP_LEVEL = "(top level)"
"""How the document itself is named when a problem has no deeper location."""

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[]+)")


def child(path: str, key: str | int) -> str:
    """The location of ``key`` (a mapping key or a list index) inside ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def format_location(parts: Iterable[str | int]) -> str:
    """A location from its keys and indices, as jsonschema reports them."""
    path = ""
    for part in parts:
        path = child(path, part)
    return path


def steps(path: str) -> list[str | int]:
    """The keys and indices of a location, in order: ``a[2].b`` is ``["a", 2, "b"]``."""
    return [int(index) if index else name for index, name in _TOKEN.findall(path)]


def sort_key(path: str) -> tuple[tuple[int, int, str], ...]:
    """Orders locations by structure: ``[2]`` before ``[10]``, a parent before its children."""
    return tuple((0, int(index), "") if index else (1, 0, name)
                 for index, name in _TOKEN.findall(path))
