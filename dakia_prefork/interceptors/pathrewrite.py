"""Path rewriting, pure: a prefix to strip, a regex with a replacement template.

The replacement template refers to the regex's groups as ``$1``, ``${1}`` or ``${name}``
(``$0`` is the whole match) and ``$$`` is a literal dollar, as in nginx and Traefik. It is
parsed once, when the config loads, and a reference to a group the regex does not have is
a config error. Literal text may contain only what a request path may (visible ASCII, no
``?`` or ``#``): the result is written as the request target.

Paths are the raw request-target path, percent-encoding kept, so a pattern matches what
the client sent (``%2F`` stays ``%2F``). The pattern runs on RE2 (``routing.regex``): a
client's path cannot make it take more than linear time.

``PathRewrite`` is both settings as a config gives them (``strip_prefix``, ``path_regex``),
shared by request_rewrite, use_file and try_file.
"""
from __future__ import annotations

import re
from typing import Any

from ..routing.regex import RegexError, compile_regex
from .base import Problems

_REFERENCE = re.compile(r"\$(?:(\d+)|\{(\w+)\}|(\$))")
_PATH_TEXT = re.compile(r"^[!$%&'()*+,\-./0-9:;=@A-Z\[\]_a-z~]*$")

Part = str | int     # literal text, or a group (by number; names are resolved at parse)


class PathTemplate:
    """A replacement template bound to its compiled pattern."""

    __slots__ = ("pattern", "parts")

    def __init__(self, pattern: str, replacement: str) -> None:
        """Raise ValueError naming ``pattern`` or ``replacement`` when either is bad."""
        try:
            self.pattern = compile_regex(pattern)
        except RegexError as exc:
            raise ValueError(f"pattern: does not compile: {exc}") from None
        self.parts: list[Part] = []
        position = 0
        for match in _REFERENCE.finditer(replacement):
            self._literal(replacement[position:match.start()])
            number, name, dollar = match.groups()
            if dollar:
                self.parts.append("$")
            elif number is not None:
                if int(number) > self.pattern.groups:
                    raise ValueError(f"replacement: ${number} but the pattern has "
                                     f"{self.pattern.groups} group(s)")
                self.parts.append(int(number))
            elif name.isdigit():
                if int(name) > self.pattern.groups:
                    raise ValueError(f"replacement: ${{{name}}} but the pattern has "
                                     f"{self.pattern.groups} group(s)")
                self.parts.append(int(name))
            elif name in self.pattern.groupindex:
                self.parts.append(self.pattern.groupindex[name])
            else:
                raise ValueError(f"replacement: the pattern has no group named {name!r}")
            position = match.end()
        self._literal(replacement[position:])

    def _literal(self, text: str) -> None:
        if "$" in text:
            raise ValueError("replacement: a '$' must start $1, ${1}, ${name} or $$")
        if not _PATH_TEXT.match(text):
            raise ValueError(f"replacement: {text!r} has characters a path cannot carry "
                             "(visible ASCII only; no '?', '#', spaces or quotes)")
        if text:
            self.parts.append(text)

    def apply(self, path: str) -> str:
        """``path`` with the first match of the pattern replaced; unchanged if none."""
        match = self.pattern.search(path)
        if match is None:
            return path
        expanded = "".join(part if isinstance(part, str) else (match.group(part) or "")
                           for part in self.parts)
        return path[:match.start()] + expanded + path[match.end():]


def is_path(text: str) -> bool:
    """Whether ``text`` can be written as a request path as it is."""
    return text.startswith("/") and _PATH_TEXT.match(text) is not None


def strip_prefix(path: str, prefix: str) -> str:
    """``path`` without ``prefix`` when it is a whole leading segment run (``/api`` strips
    ``/api`` and ``/api/x``, not ``/apix``); the result always starts with ``/``."""
    if path == prefix:
        return "/"
    if path.startswith(prefix) and path[len(prefix)] == "/":
        return path[len(prefix):]
    return path


class PathRewrite:
    """``strip_prefix`` then ``path_regex`` from a config, applied to a raw path."""

    def __init__(self, config: dict[str, Any], problems: Problems) -> None:
        self.prefix: str | None = None
        if config.get("strip_prefix") is not None:
            self.prefix = config["strip_prefix"].rstrip("/")
            if not self.prefix:
                problems.add("config.strip_prefix", "stripping '/' would leave no path")
        self.template: PathTemplate | None = None
        if config.get("path_regex") is not None:
            regex = config["path_regex"]
            try:
                self.template = PathTemplate(regex["pattern"], regex["replacement"])
            except ValueError as exc:
                where, _, message = str(exc).partition(": ")
                problems.add(f"config.path_regex.{where}", message)

    def apply(self, path: str) -> str:
        if self.prefix is not None:
            path = strip_prefix(path, self.prefix)
        if self.template is not None:
            path = self.template.apply(path)
        return path
