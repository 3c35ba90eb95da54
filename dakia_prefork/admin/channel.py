"""The control channel between the admin process and the master: framing and messages.

Theory of operation
-------------------
The master keeps one end of a ``socketpair`` in its ``select``; the admin process (its
child) holds the other. Each message is one line of JSON (``\\n`` ends it; JSON text has no
raw newline), at most :data:`MAX_MESSAGE_BYTES`. Messages are small on purpose: a config
document never travels here. The admin process writes the candidate document to a file of
its own under ``state_dir`` (mode 0600) and sends the file's path; the master hands the path
to the same bounded loader child as a HUP (master/reloader.py), so the master never parses
a document, whatever its size.

Requests (admin process to master), each with an ``id`` the reply repeats::

    {"id": 7, "op": "check",   "path": "..."}
    {"id": 8, "op": "publish", "path": "...", "base": 12 | null, "persist": false,
     "origin": "127.0.0.1:50412"}
    {"id": 9, "op": "reload",  "origin": "..."}

Replies: ``{"id": 8, "version": 13, "not_applied": [...]}``, ``{"id": 8, "conflict": 14}``
or ``{"id": 8, "errors": [...], "notices": [...]}``.

The master handles one request at a time, in arrival order, interleaved with HUPs; the
``base`` of a publish is compared with the running version when its verdict is applied, in
the master's single loop, which is what makes concurrent changes never interleave.
"""
from __future__ import annotations

import json
from typing import Any

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_ERRORS = 200
"""Errors a reply lists; the rest are summed up in one line, so a reply stays small."""


class ChannelError(Exception):
    """The peer sent something that is not a message of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE_BYTES:
        raise ChannelError(f"a message of {len(data)} bytes is over the channel's limit")
    return data


def bounded_errors(errors: list[str]) -> list[str]:
    """At most MAX_ERRORS errors, each at most 1,000 characters."""
    shown = [str(error)[:1000] for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append(f"... and {len(errors) - MAX_ERRORS} more")
    return shown


class LineReader:
    """Splits what a socket delivers into messages; refuses a line over the limit."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._pending += data
        messages: list[dict[str, Any]] = []
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                if len(self._pending) > MAX_MESSAGE_BYTES:
                    raise ChannelError("a message is over the channel's limit")
                return messages
            line = bytes(self._pending[:end])
            del self._pending[:end + 1]
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise ChannelError(f"not JSON: {exc}") from None
            if not isinstance(message, dict):
                raise ChannelError("a message must be a JSON object")
            messages.append(message)
