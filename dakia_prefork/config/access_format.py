"""The access log's fields and formats: what ``access_log_format`` and ``access_log_fields``
may name (checked here, written by worker/accesslog.py).

``access_log_format`` is ``combined``, ``json``, or a template: text with ``$field``
names (``$$`` is a dollar sign), e.g. ``"$remote_addr $status $request_time $request_id"``.
``access_log_fields`` picks and orders the keys of a ``json`` line.
"""
from __future__ import annotations

import re

FIELDS: tuple[str, ...] = (
    "time",                 # ISO 8601 with the UTC offset: 2026-12-03T08:00:00+0000
    "time_local",           # nginx's: 03/Dec/2026:08:00:00 +0000
    "remote_addr",          # the client's address ("-" for a unix socket)
    "host",                 # the Host matched ("-" before a host matched)
    "method",
    "target",               # the request target as the client sent it
    "protocol",             # HTTP/1.1
    "request",              # "GET /a?b HTTP/1.1"
    "status",
    "body_bytes_sent",      # response body bytes sent to the client
    "request_bytes",        # request body bytes read from the client (sent upstream)
    "referer",
    "user_agent",
    "request_id",           # the request_id interceptor's id, else the client's
                            # X-Request-Id, else "-"
    "upstream_addr",        # the node of the last attempt (host:port, unix:/path) or "-"
    "upstream_time",        # seconds from the first upstream attempt to the response's
                            # end, ms precision; "-" (json: null) without an attempt
    "request_time",         # seconds from the request head to the response's end
)
FIELD_SET = frozenset(FIELDS)

COMBINED = ('$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$referer" '
            '"$user_agent" $request_time $request_id $upstream_addr $upstream_time '
            '$request_bytes')
"""``combined``: nginx's combined format, then the request time, request id, upstream
address and time and request body bytes, as nginx users append them."""

_FIELD = re.compile(r"\$(\$|[a-z_]+)")


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """``(literal text, field name or None)`` pieces of a template; ValueError naming the
    unknown fields."""
    pieces: list[tuple[str, str | None]] = []
    unknown: list[str] = []
    at = 0
    text = ""
    for match in _FIELD.finditer(template):
        text += template[at:match.start()]
        at = match.end()
        name = match.group(1)
        if name == "$":
            text += "$"
            continue
        if name not in FIELD_SET:
            unknown.append(name)
            continue
        pieces.append((text, name))
        text = ""
    text += template[at:]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join('$' + n for n in unknown)} "
                         f"(known: {', '.join(FIELDS)})")
    if not pieces:
        raise ValueError("expected combined, json or a template naming at least one "
                         "$field (e.g. \"$remote_addr $status $request_time\")")
    if text:
        pieces.append((text, None))
    return pieces


def check_format(value: str) -> str | None:
    """The problem with an ``access_log_format`` value, or None."""
    if value in ("combined", "json"):
        return None
    try:
        parse_template(value)
    except ValueError as exc:
        return str(exc)
    return None
