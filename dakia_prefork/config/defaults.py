"""Fills absent keys from the schema's ``default`` values.

The schema is the one place defaults are written, so the documentation of a setting and
the value a config gets cannot drift apart. The walk follows ``properties``, ``items`` and
local ``$ref``s, which is all schema.json uses on the way to a defaulted key; a default
that is itself a mapping (``limits: {}``) is filled in turn.
"""
from __future__ import annotations

import copy
from typing import Any

_ABSENT = object()


def fill_defaults(document: Any, schema: dict[str, Any]) -> None:
    """Add, in place, every absent key of ``document`` whose schema gives a default.

    ``document`` must already validate against ``schema``; keys present with any value,
    null included, are left alone.
    """
    _fill(document, schema, schema)


def _fill(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        for key, sub_schema in schema.get("properties", {}).items():
            if key not in value:
                default = _default(sub_schema, root)
                if default is _ABSENT:
                    continue
                value[key] = copy.deepcopy(default)
            _fill(value[key], sub_schema, root)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _fill(item, schema["items"], root)


def _default(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """The default a property schema declares, itself or through its ``$ref``."""
    while True:
        if "default" in schema:
            return schema["default"]
        if "$ref" not in schema:
            return _ABSENT
        schema = _lookup(schema["$ref"], root)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _lookup(schema["$ref"], root)
    return schema


def _lookup(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    """Resolve a local reference ``#/a/b``; schema.json uses no other kind."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = root
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    result: dict[str, Any] = node
    return result
