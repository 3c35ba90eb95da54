"""Bytes we write by hand: request heads to upstreams, response heads to clients, chunk framing.

Everything here must be exactly what h11 would accept (tests/unit/test_wire.py feeds the
output to h11). Header names and values come from a parser that has already validated them
(tokens; no CR, LF or NUL in values), so they are written back as they are; the values this
module adds itself are built from validated parts.
"""
from __future__ import annotations

from http import HTTPStatus

from .heads import Headers

# RFC 9110 7.6.1 plus the legacy ones every proxy strips. Content-Length is here because the
# proxy writes the framing of each side itself.
HOP_BY_HOP = frozenset((
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"content-length",
))

_CLOSE = frozenset((b"close",))

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """Header names listed in Connection (they are hop-by-hop too), lower-cased."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return frozenset(tokens)


def end_to_end(headers: Headers) -> Headers:
    """The headers a proxy forwards: hop-by-hop ones and those named in Connection removed
    (``close`` is an option, never a header name)."""
    named = connection_tokens(headers) - _CLOSE
    if named:
        drop = HOP_BY_HOP | named
        return [(n, v) for n, v in headers if n not in drop]
    return [(n, v) for n, v in headers if n not in HOP_BY_HOP]


def request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    """An HTTP/1.1 request head; ``headers`` already carry the framing the caller chose."""
    out = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        out += (name, b": ", value, CRLF)
    out.append(CRLF)
    return b"".join(out)


def response_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """An HTTP/1.1 status line and headers; an empty reason gets the standard phrase."""
    out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b"Unknown"))]
    for name, value in headers:
        out += (name, b": ", value, CRLF)
    out.append(CRLF)
    return b"".join(out)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``data`` must not be empty: that would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def simple_response(status: int, body: bytes, *, close: bool,
                    extra: Headers | None = None) -> bytes:
    """A complete response the gateway answers on its own (errors, short-circuits)."""
    headers: Headers = [(b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", b"%d" % len(body))]
    if extra:
        headers = extra + [h for h in headers if h[0] not in {n for n, _ in extra}]
    if close:
        headers.append((b"connection", b"close"))
    return response_head(status, b"", headers) + body
