"""Reading a config file: YAML or JSON text to a plain mapping, with file-level errors.

``.json`` files are parsed as JSON (exact error positions); everything else as YAML with
the safe loader (JSON is valid YAML, so both shapes work either way). Duplicate keys are
errors in both: YAML and JSON parsers otherwise keep the last one silently, which hides
exactly the kind of typo a config check exists to catch.

Every read is bounded first (``bounds.py``: size, nesting depth, nodes after YAML alias
expansion), so no file can stall or crash whoever loads it: a start, ``check``, or a HUP.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from . import bounds
from .errors import ConfigError, excerpt

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key repeated in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # Keys brought in by a merge (<<: *anchor) may be overridden on purpose.
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                # An unhashable key: the base class reports it with its position.
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {excerpt(repr(key))}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_source(path: str) -> dict[str, Any]:
    """Read ``path`` (``.json``: JSON, otherwise YAML) into a mapping.

    Raises :class:`ConfigError` with one ``"<file>: <message>"`` error when the file cannot
    be read, is not UTF-8, does not parse (the message gives line and column), is empty,
    or its top level is not a mapping.
    """
    try:
        with open(path, "rb") as stream:
            raw = bounds.read_bounded(path, stream)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    return parse_document(raw, path, as_json=is_json_path(path), what="file")


def is_json_path(path: str) -> bool:
    """Whether a config file at ``path`` is read (and written back) as JSON."""
    return path.lower().endswith(".json")


def parse_document(raw: bytes, name: str, *, as_json: bool,
                   what: str = "document") -> dict[str, Any]:
    """Parse a config document's bytes (a file's, a request body's) under the same bounds
    and rules as a file; errors are prefixed with ``name``. Raises :class:`ConfigError`."""
    if len(raw) > bounds.MAX_DOCUMENT_BYTES:
        raise ConfigError(f"{name}: the {what} is larger than the "
                          f"{bounds.MAX_DOCUMENT_BYTES} bytes a config may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if as_json:
        bounds.check_json(name, text)
        data = _parse_json(name, text)
    else:
        bounds.check_yaml(name, text, _StrictLoader)
        data = _parse_yaml(name, text)
    if data is None:
        raise ConfigError(f"{name}: the {what} is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: the top level must be a mapping, got {type(data).__name__}")
    return data


def render_document(document: dict[str, Any], *, as_json: bool) -> str:
    """A document as the text of a config file: JSON (indented) or block-style YAML."""
    if as_json:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True,
                          default_flow_style=False)


def _parse_yaml(path: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{path}: {_describe_yaml_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    """``line L, column C: <what>`` (1-based) from a PyYAML error, on one line."""
    mark = exc.problem_mark or exc.context_mark
    what = "; ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
    if mark is None:
        return what
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}"


def _parse_json(path: str, text: str) -> Any:
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                # json gives no position here; the key's name is enough to find it.
                raise ConfigError(f"{path}: duplicate key {excerpt(repr(key))}")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
