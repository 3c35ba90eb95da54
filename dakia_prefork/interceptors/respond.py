"""The bytes of a complete response whose body an interceptor gave (a Reply, a replaced body).

Such a body is known in full, so it goes out with its own Content-Length, whatever framing
the upstream used. 204 and 304 carry neither a body nor a Content-Length (RFC 9110 8.6);
the answer to a HEAD request carries the Content-Length of the body it would have had.

A body is ``bytes`` or a ``FileBody`` (body.py), which is read from its file as it is sent.
``response_parts`` gives the head and the body as chunks, for a writer that sends them one
by one with bounded memory; ``encode_response`` gives the same bytes as one buffer, which
for a FileBody means reading the whole file into memory first.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..message import wire
from ..message.heads import Headers
from .body import Body, FileBody

_NO_BODY_STATUSES = (204, 304)


def response_parts(status: int, reason: bytes, headers: Headers, body: Body, *,
                   head_only: bool, trailing: Headers) -> tuple[bytes, Iterable[bytes]]:
    """The head (status line, ``headers``, Content-Length, ``trailing``) and the body's
    chunks; a FileBody that is not to be sent is closed here."""
    out = list(headers)
    no_body = status in _NO_BODY_STATUSES
    if not no_body:
        out.append((b"content-length", b"%d" % len(body)))
    out.extend(trailing)
    payload = wire.response_head(status, reason, out)
    if head_only or no_body:
        if isinstance(body, FileBody):
            body.close()
        return payload, ()
    return payload, (body.chunks() if isinstance(body, FileBody) else (body,))


def encode_response(status: int, reason: bytes, headers: Headers, body: Body, *,
                    head_only: bool, trailing: Headers) -> bytes:
    """The whole response as one buffer: head, then body."""
    payload, chunks = response_parts(status, reason, headers, body, head_only=head_only,
                                     trailing=trailing)
    return payload + b"".join(chunks)
