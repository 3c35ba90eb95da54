"""Host names: normalising a Host header and matching it against a gateway's downstreams.

Theory of operation
-------------------
A Host header is reduced to one canonical form before anything compares it: lower-case,
port removed, IPv6 literal without brackets and in its compressed form (``[0:0::1]:80`` →
``::1``), trailing dot removed. Exact patterns in the config go through the same function,
so an exact match is a single dict lookup.

:class:`HostMatcher` answers "which downstream pattern does this host belong to", by
precedence (as nginx does for ``server_name``):

1. exact names, one dict lookup;
2. wildcards ``*.suffix``: the host's dot-suffixes are looked up from the longest to the
   shortest, so the most specific wildcard wins and the cost is one lookup per label;
3. ``*`` (any host);
4. regexes (``~<regex>``, matched with ``fullmatch`` on the lower-cased host), in config
   order. They run on RE2 (``regex``), in time linear in the Host, whatever the pattern.

An empty pattern list answers every host, as a gateway without ``downstreams`` does.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import ClassVar

from .regex import Match, Regex, RegexError, compile_regex

# An RFC 3986 reg-name (which covers IPv4 literals): unreserved characters, sub-delims
# and percent-escapes, in dot-separated labels, optionally ending in the root's dot.
# Anything else (spaces, '/', '@', '?', '#', non-ASCII) makes the host malformed: IDNs
# arrive as punycode, and a Host that could smuggle a path or userinfo must not reach a
# route. On top of RFC 3986, a name must be one DNS could hold (RFC 1035 2.3.4): no empty
# label, no label over 63 octets, at most 253 octets in all (escapes decoded).
_NAME = re.compile(r"(?:[a-z0-9._~!$&'()*+,;=-]|%[0-9a-f]{2})+")
_MAX_NAME = 253
_MAX_LABEL = 63
_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._~")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_PORT = 65535

ANY_HOST = "*"
WILDCARD_PREFIX = "*."
REGEX_PREFIX = "~"


class HostPatternError(ValueError):
    """A downstream host pattern that cannot be used; ``str()`` says why."""


def split_host_port(value: str) -> tuple[str, int | None] | None:
    """Split ``host[:port]`` into the canonical host and the port (None when absent).

    Accepts ``name``, ``name:port``, ``1.2.3.4[:port]``, ``[v6]``, ``[v6]:port`` and a bare
    IPv6 literal (``::1``, as written in configs). The host comes back lower-case, without
    a trailing dot, IPv6 compressed and without brackets. Returns None when the value is
    malformed: empty, non-ASCII, bad characters, a port that is not 0..65535, unbalanced
    brackets, or brackets around something that is not an IPv6 address.
    """
    if not value or not value.isascii():
        return None
    text = value.lower()
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            return None
        host = _ipv6(text[1:end])
        rest = text[end + 1:]
        if host is None:
            return None
        if not rest or rest == ":":
            return host, None
        if rest[0] != ":":
            return None
        port = _port(rest[1:])
        return None if port is None else (host, port)
    if text.count(":") > 1:
        # More than one colon without brackets can only be a bare IPv6 literal.
        host = _ipv6(text)
        return None if host is None else (host, None)
    name, colon, port_text = text.partition(":")
    if not _NAME.fullmatch(name):
        return None
    if "%" in name:
        name = _unescape(name)
    name = name.removesuffix(".")
    if len(name) > _MAX_NAME or not all(0 < len(label) <= _MAX_LABEL
                                        for label in name.split(".")):
        return None
    if not colon or not port_text:
        # "host:" is a legal authority (RFC 3986 3.2.3: an empty port is the default).
        return name, None
    port = _port(port_text)
    return None if port is None else (name, port)


def normalise_host(value: str) -> str | None:
    """The canonical form of a Host header value, or None if it is malformed.

    ``Example.COM:8080`` → ``example.com``; ``[::1]:8080`` → ``::1``; ``example.com.`` →
    ``example.com``; ``""``, ``a b``, ``x:99999``, ``[::1`` → None.
    """
    parts = split_host_port(value)
    return None if parts is None else parts[0]


def normalise_pattern(pattern: str) -> str:
    """The canonical form of one downstream host pattern; raises :class:`HostPatternError`.

    Exact names and addresses are normalised like a Host header (and must not carry a
    port: the port of a Host header is never compared); wildcards are lower-cased; regexes
    are returned unchanged once they compile.
    """
    if pattern.startswith(REGEX_PREFIX):
        _compile_regex(pattern)
        return pattern
    if pattern == ANY_HOST:
        return pattern
    if pattern.startswith(WILDCARD_PREFIX):
        suffix = pattern[len(WILDCARD_PREFIX):]
        parts = split_host_port(suffix) if "*" not in suffix and ":" not in suffix else None
        if parts is None:
            raise HostPatternError(
                f"{pattern!r} is not a valid wildcard: '*.' must be followed by a host name")
        return WILDCARD_PREFIX + parts[0]
    if "*" in pattern:
        raise HostPatternError(
            f"{pattern!r}: '*' is only allowed as the whole leftmost label, as in "
            "'*.example.com', or alone to match any host")
    parts = split_host_port(pattern)
    if parts is None:
        raise HostPatternError(f"{pattern!r} is not a host name or an IP address")
    if parts[1] is not None:
        raise HostPatternError(
            f"{pattern!r}: a host pattern has no port (the Host header's port is ignored)")
    return parts[0]


class HostMatcher:
    """Matches normalised hosts against a gateway's downstream patterns.

    Patterns are given as in the config; invalid ones raise :class:`HostPatternError`.
    When several exact or wildcard patterns normalise to the same key, the first wins.
    """

    __slots__ = ("_exact", "_suffixes", "_any", "_regexes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._exact: dict[str, str] = {}
        self._suffixes: dict[str, str] = {}
        self._any: str | None = None
        regexes: list[tuple[Callable[[str], Match | None], str]] = []
        count = 0
        for pattern in patterns:
            count += 1
            canonical = normalise_pattern(pattern)
            if canonical.startswith(REGEX_PREFIX):
                regexes.append((_compile_regex(canonical).fullmatch, pattern))
            elif canonical == ANY_HOST:
                if self._any is None:
                    self._any = pattern
            elif canonical.startswith(WILDCARD_PREFIX):
                self._suffixes.setdefault(canonical[len(WILDCARD_PREFIX):], pattern)
            else:
                self._exact.setdefault(canonical, pattern)
        if count == 0:
            self._any = ANY_HOST
        self._regexes = tuple(regexes)

    def match(self, host: str) -> str | None:
        """The pattern (as given) that ``host`` falls under, or None.

        ``host`` is expected in :func:`normalise_host` form; it is lower-cased again here
        only because that costs nothing next to a wrong answer.
        """
        host = host.lower()
        pattern = self._exact.get(host)
        if pattern is not None:
            return pattern
        if self._suffixes:
            # Longest suffix first: "a.b.example.com" tries "b.example.com", then
            # "example.com", then "com", so "*.b.example.com" beats "*.example.com".
            dot = host.find(".")
            while dot >= 0:
                pattern = self._suffixes.get(host[dot + 1:])
                if pattern is not None:
                    return pattern
                dot = host.find(".", dot + 1)
        if self._any is not None:
            return self._any
        for fullmatch, pattern in self._regexes:
            if fullmatch(host) is not None:
                return pattern
        return None


def _unescape(name: str) -> str:
    """Percent-escapes of unreserved characters decoded (``exa%4Dple`` is ``example``,
    RFC 3986 6.2.2.2); the others kept, upper-case (the name is lower-case already)."""
    parts = name.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        char = chr(int(part[:2], 16)).lower()
        out.append((char if char in _UNRESERVED else "%" + part[:2].upper()) + part[2:])
    return "".join(out)


def _ipv6(text: str) -> str | None:
    """The compressed form of an IPv6 literal, or None if ``text`` is not one."""
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None


def _port(text: str) -> int | None:
    """A port number 0..65535 from its decimal digits, or None."""
    if not _PORT.fullmatch(text):
        return None
    port = int(text)
    return port if port <= _MAX_PORT else None


def _compile_regex(pattern: str) -> Regex:
    """Compile the regex of a ``~regex`` pattern, or raise :class:`HostPatternError`."""
    source = pattern[len(REGEX_PREFIX):]
    if not source:
        raise HostPatternError("empty regex after '~'")
    try:
        return compile_regex(source)
    except RegexError as exc:
        raise HostPatternError(f"invalid regex: {exc}") from None


class HostLookup:
    """A gateway's answer for a raw Host header: the normalised host, and whether one of
    the downstreams takes it. Memoised, because clients send the same few Host values over
    and over and the answer costs a parse and a match.

    The memo is bounded on both sides a client controls: values longer than a DNS name
    (plus a port) are answered without being kept, and at ``MAX_ENTRIES`` it starts over.
    One ``HostLookup`` belongs to one config version, so a reload never sees stale answers.
    """

    # ClassVar: constants of the class, also in the compiled build (where a plain class
    # attribute would become a per-instance default).
    MAX_ENTRIES: ClassVar[int] = 1024
    MAX_KEY: ClassVar[int] = 270   # 253 for the name, [ ] for an IPv6 literal, ":65535"

    __slots__ = ("_matcher", "_seen")

    def __init__(self, matcher: HostMatcher) -> None:
        self._matcher = matcher
        self._seen: dict[bytes, tuple[str | None, bool]] = {}

    def lookup(self, raw: bytes) -> tuple[str | None, bool]:
        """(host, known): host is None for a malformed value (400); known tells whether a
        downstream matches (404 otherwise). An absent Host is ``b""``: host ``""``."""
        found = self._seen.get(raw)
        if found is not None:
            return found
        host = normalise_host(raw.decode("latin-1")) if raw else ""
        found = (host, host is not None and self._matcher.match(host) is not None)
        if len(raw) <= self.MAX_KEY:
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen.clear()
            self._seen[raw] = found
        return found
