"""Bounds on a config document, checked before anything builds it.

Theory of operation
-------------------
A config file is read by the master (start, HUP) and by ``dakia-master check``. Without
bounds, one file can stall or kill them: a 50 MB file took minutes and gigabytes; a
100,000-deep nesting overflows the recursive parsers and constructors (a RecursionError,
a 3,000-line traceback); a few YAML aliases that refer to each other ("billion laughs")
expand to more nodes than memory holds. So, in this order, each cheap and none recursive:

1. size: at most :data:`MAX_DOCUMENT_BYTES` are read (the read stops one byte past the
   limit, whatever the file claims or however it grows);
2. YAML: the parser's *event stream* (PyYAML's parser is an iterative state machine; only
   the composer and constructor recurse) is walked once with an explicit stack, counting
   depth, nodes and the characters of scalars. An alias counts as the whole subtree of its
   anchor for all three, so the totals are those of the document after alias expansion.
   Only if that walk passes is the document composed and constructed;
3. JSON: a scan of the brackets outside strings (a regex, not a parser) finds the depth
   before ``json.loads``, whose scanner recurses.

Errors are located (``line L, column C``) like the parsers' own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

import yaml

from .errors import ConfigError

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000          # after alias expansion
# Characters of scalars after alias expansion: one long string aliased many times stays
# within the node count, yet whoever writes the normalised config (the version store)
# would write every copy.
MAX_TEXT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Bounds:
    max_bytes: int = MAX_DOCUMENT_BYTES
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_text: int = MAX_TEXT


DEFAULT = Bounds()


def read_bounded(path: str, stream: BinaryIO, bounds: Bounds = DEFAULT) -> bytes:
    """The file's bytes, or ConfigError when there are more than ``bounds.max_bytes``."""
    data = stream.read(bounds.max_bytes + 1)
    if len(data) > bounds.max_bytes:
        raise ConfigError(f"{path}: the file is larger than {_size(bounds.max_bytes)}; "
                          "a config file may have at most that")
    return data


def check_yaml(path: str, text: str, loader: type, bounds: Bounds = DEFAULT) -> None:
    """Raise ConfigError if the YAML document nests deeper than ``bounds.max_depth``, or
    has more than ``bounds.max_nodes`` nodes or ``bounds.max_text`` characters of scalars
    once its aliases are expanded.

    Syntax errors are left to the real load, which reports them with its own message."""
    stack: list[_Open] = []
    # anchor -> (nodes, depth below it, characters of scalars), all aliases expanded
    anchors: dict[str, tuple[int, int, int]] = {}
    total = 0
    total_text = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) + 1 > bounds.max_depth:
                    raise ConfigError(f"{path}: {_at(event)}nested deeper than "
                                      f"{bounds.max_depth} levels")
                stack.append(_Open(event.anchor))
                total += 1
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                closed = stack.pop()
                size, depth, chars = closed.nodes, closed.below + 1, closed.text
                if closed.anchor is not None:
                    anchors[closed.anchor] = (size, depth, chars)
            elif isinstance(event, yaml.ScalarEvent):
                size, depth, chars = 1, 0, len(event.value)
                total_text += chars
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0, chars)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    # Undefined, or an alias inside its own anchor (a recursive document):
                    # neither is a config. The composer would say "undefined"; say both.
                    raise ConfigError(f"{path}: {_at(event)}alias *{_cut(event.anchor)} "
                                      "refers to no complete anchor before it")
                size, depth, chars = anchors[event.anchor]
                total_text += chars
                if len(stack) + depth > bounds.max_depth:
                    raise ConfigError(f"{path}: {_at(event)}alias *{_cut(event.anchor)} "
                                      f"nests deeper than {bounds.max_depth} levels")
                total += size - 1     # the alias itself is the one counted below
            else:
                continue
            if not isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                total += 1            # a collection was counted when it opened
            if total > bounds.max_nodes:
                raise ConfigError(f"{path}: {_at(event)}more than {bounds.max_nodes:,} "
                                  "values once aliases are expanded")
            if total_text > bounds.max_text:
                raise ConfigError(f"{path}: {_at(event)}more than {_size(bounds.max_text)} of "
                                  "text once aliases are expanded")
            if stack:
                stack[-1].nodes += size
                stack[-1].below = max(stack[-1].below, depth)
                stack[-1].text += chars
    except yaml.YAMLError:
        return          # the real load reports it with line and column


# Strings (with their escapes) or brackets: what is outside strings decides the depth.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def check_json(path: str, text: str, bounds: Bounds = DEFAULT) -> None:
    """Raise ConfigError if the JSON text nests deeper than ``bounds.max_depth``."""
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > bounds.max_depth:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise ConfigError(f"{path}: line {line}, column {column}: nested deeper "
                                  f"than {bounds.max_depth} levels")
        elif token in "]}":
            depth -= 1


class _Open:
    """A collection whose end event has not come yet."""

    __slots__ = ("anchor", "nodes", "below", "text")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.nodes = 1          # itself and everything in it, aliases expanded
        self.below = 0          # levels below it
        self.text = 0           # characters of the scalars in it


def _at(event: yaml.Event) -> str:
    mark = event.start_mark
    return "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "


def _cut(text: str | None, limit: int = 40) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"
