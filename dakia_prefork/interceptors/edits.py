"""Header edits from config, shared by request_rewrite and response_rewrite.

``remove_headers: [names]``, ``set_headers: {name: value}`` (replace), ``add_headers:
{name: value}`` (append), and Dakia's ``header.<name>: value`` map keys (set; null removes).
Applied in that order: removed, then set, then added.
"""
from __future__ import annotations

from typing import Any

from .base import Problems
from .headers import HeaderList, header_name, header_value


class HeaderEdits:
    __slots__ = ("remove", "set", "add")

    def __init__(self, config: dict[str, Any], dakia_headers: dict[str, Any],
                 problems: Problems) -> None:
        self.remove: list[bytes] = []
        self.set: list[tuple[bytes, bytes]] = []
        self.add: list[tuple[bytes, bytes]] = []
        edits: list[tuple[str, str, Any, list[Any]]] = [
            ("config.remove_headers", name, None, self.remove)
            for name in config.get("remove_headers", [])]
        edits += [(f"config.set_headers.{name}", name, value, self.set)
                  for name, value in config.get("set_headers", {}).items()]
        edits += [(f"config.add_headers.{name}", name, value, self.add)
                  for name, value in config.get("add_headers", {}).items()]
        edits += [(f"rewrite.header.{name}", name, value,
                   self.remove if value is None else self.set)
                  for name, value in dakia_headers.items()]
        for where, name, value, into in edits:
            try:
                raw_name = header_name(name)
                into.append(raw_name if value is None else (raw_name, header_value(value)))
            except ValueError as exc:
                problems.add(where, str(exc))

    def apply(self, headers: HeaderList) -> None:
        for name in self.remove:
            headers.remove(name)
        for name, value in self.set:
            headers.set(name, value)
        for name, value in self.add:
            headers.add(name, value)
