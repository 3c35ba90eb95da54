"""The JSON Schema of the config (``schema.json``, package data) and its error reports.

Validation reports every violation, not the first, as ``(location, message)``. Messages
are jsonschema's own where they read well (``70000 is greater than the maximum of
65535``) and rewritten where they do not:

- an unknown key is reported at the key's own location, with a suggestion when the key
  looks like a typo of a known one;
- a missing required key is reported at the location it should have;
- ``anyOf``/``oneOf`` failures use the schema's ``x-messages`` text for that keyword,
  instead of "is not valid under any of the given schemas".

JSON Schema is defined on JSON data, so the document is first checked to be plain data:
string keys, finite numbers, no YAML-only types (dates, sets, binary).
"""
from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, SchemaError, ValidationError

from .location import child, format_location

Problem = tuple[str, str]
"""A (location, message) pair."""

_REPR_LIMIT = 80
_LIST_KEYS_LIMIT = 8


@functools.cache
def load_schema() -> dict[str, Any]:
    """The config schema (draft 2020-12), loaded once from the package data."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def plain_data_problems(value: Any, path: str = "") -> list[Problem]:
    """Where ``value`` is not JSON-shaped data: non-string keys, NaN/infinity, other types."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"keys must be strings, got {key!r}"))
                continue
            problems.extend(plain_data_problems(item, child(path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(plain_data_problems(item, child(path, index)))
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.append((path, f"{value!r} is not a finite number"))
    elif not (value is None or isinstance(value, (str, int, bool))):
        problems.append((path, f"a {type(value).__name__} value is not allowed here; "
                               "quote it to make it a string"))
    return problems


def schema_problems(document: Any) -> list[Problem]:
    """Every way ``document`` (plain data) violates the schema, deduplicated."""
    return _problems(_validator(), document)


def problems_against(schema: dict[str, Any], document: Any) -> list[Problem]:
    """Every way ``document`` violates another ``schema`` (a plugin's config schema), with
    the same messages as the config's own; a schema that is itself invalid is one problem."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [("", f"the plugin's config_schema is not a valid JSON Schema: {exc.message}")]
    return _problems(Draft202012Validator(schema), document)


def _problems(validator: Draft202012Validator, document: Any) -> list[Problem]:
    seen: set[Problem] = set()
    problems: list[Problem] = []
    for error in validator.iter_errors(document):
        for problem in _describe(error):
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    return problems


def _describe(error: ValidationError) -> Iterator[Problem]:
    path = format_location(error.absolute_path)
    instance = error.instance
    # The subschema that failed: a mapping for every keyword our schemas use (jsonschema
    # types it as possibly a boolean schema, or unset for errors made by hand).
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        for key in instance:
            if key not in known:
                yield child(path, key), _unknown_key_message(key, known)
        return
    required = error.validator_value
    if (error.validator == "required" and isinstance(instance, dict)
            and isinstance(required, list)):
        for key in required:
            if key not in instance:
                yield child(path, key), "required key is missing"
        return
    custom = schema.get("x-messages", {}).get(error.validator)
    if custom is not None:
        yield path, f"{custom}, got {_short_repr(instance)}"
        return
    yield path, error.message


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if len(known) <= _LIST_KEYS_LIMIT:
        return f"unknown key (expected: {', '.join(known)})"
    return "unknown key"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT - 3] + "..."
