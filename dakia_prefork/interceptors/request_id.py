"""``request_id``: one id per request, sent upstream and back to the client.

``config: {header: X-Request-Id, keep_incoming: false}``. The id is a UUID4, set on the
upstream request and on every response (the gateway's own answers too, so a 401 or a 502
can be traced). With ``keep_incoming``, a well-formed id sent by the client (1 to 128 of
``A-Z a-z 0-9 . _ : -``) is kept instead, so an id made further out survives the hop.
Other interceptors find the id in ``ctx.vars["request_id"]``.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

from .base import Interceptor, register
from .context import Context, Reply
from .headers import header_name

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
            current = str(uuid.uuid4())
        ctx.vars["request_id"] = current
        ctx.upstream_request.headers.set(self.header, current)
        return None

    def pre_downstream_response(self, ctx: Context) -> None:
        assert ctx.response is not None
        value = ctx.vars.get("request_id")
        if value is not None:
            ctx.response.headers.set(self.header, value)
