"""``client_subject_header``: the verified client subject, as a request header.

The header is the gateway's word, never the client's: every header of that name the
client sent is removed (and so is its name from a Connection header, which would drop it
on the way upstream), and the subject of the certificate the handshake verified is added
(nothing is added when there is none). Filters, interceptors (``ctx.request``) and the
upstream then all see the same value. Header values are latin-1 octets; a subject with
other characters is sent with them escaped as RFC 4514 allows (``\\XX`` hex pairs), so it
stays one line of printable ASCII.
"""
from __future__ import annotations

from ..message.heads import RequestHead


def header_value(subject: str) -> bytes:
    """``subject`` as a header value: printable ASCII, everything else hex-escaped."""
    if subject.isascii() and subject.isprintable():
        return subject.encode("ascii")
    out = []
    for char in subject:
        if char.isascii() and char.isprintable():
            out.append(char)
        else:
            out.extend("\\%02X" % byte for byte in char.encode("utf-8"))
    return "".join(out).encode("ascii")


def _without_token(value: bytes, name: bytes) -> bytes:
    """A Connection value without the token ``name``."""
    return b", ".join(t.strip() for t in value.split(b",")
                      if t.strip() and t.strip().lower() != name)


def with_subject(head: RequestHead, name: bytes, subject: str) -> RequestHead:
    """``head`` without the client's ``name`` headers, with ours when ``subject``. A
    Connection header that names ``name`` (which would have the gateway drop it as
    hop-by-hop on the way upstream) no longer does: the header is the gateway's."""
    headers = []
    for n, v in head.headers:
        if n == name:
            continue
        if n == b"connection" and name in v.lower():
            v = _without_token(v, name)
            if not v:
                continue
        headers.append((n, v))
    if subject:
        headers.append((name, header_value(subject)))
    return RequestHead(head.method, head.target, head.http_version, headers,
                       head.content_length, head.chunked, head.keep_alive,
                       head.expect_continue)
