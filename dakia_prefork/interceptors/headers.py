"""Header lists as interceptors edit them: validated on the way in, so nothing unsafe goes out.

The proxy writes header names and values to the wire as they are (``http.wire``), trusting
that a parser validated them. Headers an interceptor adds come from config or code instead,
so they are checked here, where they enter: a token for the name, no CR, LF or NUL in the
value (a header value with CRLF in it would let a config or a client-controlled capture
inject headers). Hop-by-hop and framing headers (``Content-Length``, ``Transfer-Encoding``,
``Connection``...) belong to the gateway, which writes the framing of each side itself;
setting one is refused rather than silently dropped or, worse, written twice.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Union

from ..message.heads import Headers
from ..message.wire import HOP_BY_HOP

HeaderValue = Union[str, bytes, int, bool]

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")


def header_name(name: str | bytes) -> bytes:
    """``name`` lower-cased as bytes; ValueError if it is not a token or is gateway-owned."""
    raw = name.encode("latin-1") if isinstance(name, str) else name
    raw = raw.lower()
    if not _TOKEN.match(raw):
        raise ValueError(f"invalid header name {name!r}")
    if raw in HOP_BY_HOP:
        raise ValueError(f"header {name!r} is hop-by-hop or framing: the gateway sets it")
    return raw


def header_value(value: HeaderValue) -> bytes:
    """``value`` as bytes (booleans as ``true``/``false``, surrounding blanks stripped);
    ValueError for control characters or text that is not Latin-1."""
    if isinstance(value, bool):
        raw = b"true" if value else b"false"
    elif isinstance(value, int):
        raw = b"%d" % value
    elif isinstance(value, str):
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header value {value!r} is not Latin-1 text") from None
    else:
        raw = value
    if not _VALUE.match(raw):
        raise ValueError(f"invalid header value {value!r} (control characters)")
    return raw.strip(b" \t")


class HeaderList:
    """A mutable view of a list of ``(name, value)`` byte pairs, names lower-case.

    Reads take and return ``str`` (Latin-1, as HTTP header bytes are); ``raw`` is the list
    itself, in wire order, repeats kept. Writes validate (see the module docstring).
    """

    __slots__ = ("raw",)

    def __init__(self, raw: Headers) -> None:
        self.raw = raw

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        key = name.lower().encode("latin-1")
        for raw_name, value in self.raw:
            if raw_name == key:
                return value.decode("latin-1")
        return None

    def get_all(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for raw_name, value in self.raw if raw_name == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, value in self.raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __len__(self) -> int:
        return len(self.raw)

    def set(self, name: str | bytes, value: HeaderValue) -> None:
        """Replace every ``name`` header with one carrying ``value``."""
        key = header_name(name)
        encoded = header_value(value)
        self.raw[:] = [h for h in self.raw if h[0] != key]
        self.raw.append((key, encoded))

    def put(self, name: bytes, value: bytes) -> None:
        """``set`` for a name and value validated already (by ``header_name`` and
        ``header_value``, typically once when the config loads): replace every ``name``
        header with one carrying ``value``, without validating again per request."""
        raw = self.raw
        for present, _ in raw:
            if present == name:
                raw[:] = [h for h in raw if h[0] != name]
                break
        raw.append((name, value))

    def add(self, name: str | bytes, value: HeaderValue) -> None:
        """Append a ``name`` header, keeping those already there."""
        self.raw.append((header_name(name), header_value(value)))

    def remove(self, name: str | bytes) -> None:
        """Drop every ``name`` header (no error when there is none)."""
        key = (name.encode("latin-1") if isinstance(name, str) else name).lower()
        self.raw[:] = [h for h in self.raw if h[0] != key]

    def __repr__(self) -> str:
        return f"HeaderList({self.raw!r})"
