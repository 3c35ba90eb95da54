"""``request_id``: one id per request, sent upstream and back to the client.

``config: {header: X-Request-Id, keep_incoming: false}``. The id is a UUID4, set on the
upstream request and on every response (the gateway's own answers too, so a 401 or a 502
can be traced). With ``keep_incoming``, a well-formed id sent by the client (1 to 128 of
``A-Z a-z 0-9 . _ : -``) is kept instead, so an id made further out survives the hop.
Other interceptors find the id in ``ctx.vars["request_id"]``.
"""
from __future__ import annotations

import os
import re
from typing import Any

from .base import Interceptor, register
from .context import Context, Reply
from .headers import header_name

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KEPT = "request_id.encoded"     # (id, its bytes) as this interceptor set them
_VARIANT = "89ab"
_BATCH = 4096


class UuidSource:
    """Random (version 4) UUID strings, cut from random bytes read 4 KiB at a time: one
    ``getrandom`` (and one ``hex``) per 256 ids instead of one per id (``uuid.uuid4`` also
    builds a UUID object to format it). The buffer is dropped in a forked child, so no two
    processes ever hand out the same ids."""

    __slots__ = ("_pool", "_at")

    def __init__(self) -> None:
        self._pool = ""              # hex digits: 32 per id
        self._at = 0

    def reset(self) -> None:
        self._pool = ""
        self._at = 0

    def next(self) -> str:
        at = self._at
        pool = self._pool
        if at >= len(pool):
            pool = self._pool = os.urandom(_BATCH).hex()
            at = 0
        self._at = at + 32
        # The version nibble is 4; the variant's two high bits are 10 (RFC 9562 4.1, 4.2).
        return (f"{pool[at:at + 8]}-{pool[at + 8:at + 12]}-4{pool[at + 13:at + 16]}-"
                f"{_VARIANT[int(pool[at + 16], 16) & 3]}{pool[at + 17:at + 20]}-"
                f"{pool[at + 20:at + 32]}")


_IDS = UuidSource()
os.register_at_fork(after_in_child=_IDS.reset)


@register
class RequestId(Interceptor):
    name = "request_id"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        try:
            self.header = header_name(config.get("header", "x-request-id"))
        except ValueError as exc:
            raise ValueError(f"config.header: {exc}") from None
        self.header_text = self.header.decode("latin-1")
        self.keep_incoming = bool(config.get("keep_incoming", False))

    def init(self, ctx: Context) -> Reply | None:
        current = ctx.request.header(self.header_text) if self.keep_incoming else None
        if current is None or not _VALID_ID.match(current):
            current = _IDS.next()
        encoded = current.encode("ascii")   # valid by construction: no per-request check
        ctx.vars["request_id"] = current
        ctx.vars[_KEPT] = (current, encoded)
        ctx.upstream_request.headers.put(self.header, encoded)
        return None

    def pre_downstream_response(self, ctx: Context) -> None:
        assert ctx.response is not None
        value = ctx.vars.get("request_id")
        if value is None:
            return
        kept = ctx.vars.get(_KEPT)
        if kept is not None and kept[0] is value:
            ctx.response.headers.put(self.header, kept[1])
        else:       # another interceptor changed it: validate what it put there
            ctx.response.headers.set(self.header, value)
