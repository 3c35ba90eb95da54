"""The external plugin protocol's messages: framing, and what the gateway sends.

A message is a 4-byte unsigned big-endian length, then that many bytes of UTF-8 JSON (one
object). The length comes first so a reader knows how much to read and can refuse an
oversized message before reading it; a message is never empty. tools/plugins/PROTOCOL.md
is the reference for plugin authors; this module is its implementation.

The gateway sends, for each call::

    {"version": 1, "id": 7, "phase": "request_filter", "route": "app", "consumer": null,
     "client": {"address": "10.0.0.7", "scheme": "http", "host": "api.example"},
     "request": {"method": "GET", "path": "/x", "query": "a=1",
                 "headers": [["host", "api.example"], ["accept", "*/*"]]},
     "response": {"status": 200, "headers": [...]}}      # response phases only

``request`` is the request as it will go upstream (interceptors before this one may have
changed it); header names are lower-case, values Latin-1 text as on the wire.
"""
from __future__ import annotations

import json
import struct
from typing import Any

from ..interceptors.context import Context

VERSION = 1
HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A message that breaks the protocol (size, framing, JSON)."""


def frame(message: dict[str, Any], limit: int) -> bytes:
    """``message`` framed for the wire; ProtocolError when it is larger than ``limit``."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > limit:
        raise ProtocolError(f"a {len(data)}-byte message is over the {limit}-byte limit")
    return HEADER.pack(len(data)) + data


def message_length(header: bytes, limit: int) -> int:
    """The length announced by a 4-byte ``header``; ProtocolError if 0 or over ``limit``."""
    (length,) = HEADER.unpack(header)
    if length == 0 or length > limit:
        raise ProtocolError(f"the plugin announced a {length}-byte message "
                            f"(allowed: 1 to {limit})")
    return length


def decode(data: bytes) -> dict[str, Any]:
    """A message body as a JSON object; ProtocolError otherwise."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"the plugin's message is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("the plugin's message is not a JSON object")
    return value


def headers_of(raw: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in raw]


def request_of(ctx: Context) -> dict[str, Any]:
    """The request as it will go upstream, without making a copy nobody asked for."""
    if ctx.upstream_request_changed:
        upstream = ctx.upstream_request
        return {"method": upstream.method, "path": upstream.path, "query": upstream.query,
                "headers": headers_of(upstream.headers.raw)}
    request = ctx.request
    return {"method": request.method, "path": request.path, "query": request.query_string,
            "headers": headers_of(request.head.headers)}


def call_message(ctx: Context, phase: str, call_id: int) -> dict[str, Any]:
    request = ctx.request
    message: dict[str, Any] = {
        "version": VERSION, "id": call_id, "phase": phase, "route": ctx.route,
        "consumer": ctx.consumer,
        "client": {"address": request.remote_addr, "scheme": request.scheme,
                   "host": request.host},
        "request": request_of(ctx),
    }
    if ctx.response is not None:
        message["response"] = {"status": ctx.response.status,
                               "headers": headers_of(ctx.response.headers.raw)}
    return message
