"""The bytes of a complete response whose body an interceptor gave (a Reply, a replaced body).

Such a body is known in full, so it goes out with its own Content-Length, whatever framing
the upstream used. 204 and 304 carry neither a body nor a Content-Length (RFC 9110 8.6);
the answer to a HEAD request carries the Content-Length of the body it would have had.
"""
from __future__ import annotations

from ..http import wire
from ..http.events import Headers

_NO_BODY_STATUSES = (204, 304)


def encode_response(status: int, reason: bytes, headers: Headers, body: bytes, *,
                    head_only: bool, trailing: Headers) -> bytes:
    """Status line, ``headers``, Content-Length, ``trailing`` (Via, Connection), body."""
    out = list(headers)
    no_body = status in _NO_BODY_STATUSES
    if not no_body:
        out.append((b"content-length", b"%d" % len(body)))
    out.extend(trailing)
    payload = wire.response_head(status, reason, out)
    if head_only or no_body:
        return payload
    return payload + body
