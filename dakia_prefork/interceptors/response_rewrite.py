"""``response_rewrite``: change the upstream's response (status, headers, body).

::

    config:
      status: null                      # e.g. 200; not 204 or 304 (the body still flows)
      set_headers: {Cache-Control: no-store}
      add_headers: {}
      remove_headers: [X-Powered-By]
      body: null                        # a string replaces the upstream's body

or Dakia's ``rewrite:`` map: ``status`` and ``header.<name>: value`` (null removes), keys
optionally prefixed ``res.`` or ``ds.res.``.

Runs in ``post_upstream_response``: it rewrites what the upstream answered, not the
gateway's own answers (a 401 of basic_auth, a short_circuit, a 502). A replaced body goes
out with its own Content-Length; the upstream's body is read and dropped (up to 64 KiB, so
the upstream connection can be reused; past that it is closed).
"""
from __future__ import annotations

from typing import Any

from .base import Interceptor, Problems, register
from .context import Context
from .edits import HeaderEdits
from .maps import split_map

_SIDES = ("ds.res.", "res.")


@register
class ResponseRewrite(Interceptor):
    name = "response_rewrite"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        dakia, dotted = split_map(entry.get("rewrite", {}), _SIDES)
        problems = Problems()
        self.status: int | None = dakia.get("status", config.get("status"))
        body = config.get("body")
        self.body: bytes | None = body.encode("utf-8") if body is not None else None
        self.headers = HeaderEdits(config, dotted.get("header", {}), problems)
        problems.raise_any()

    def post_upstream_response(self, ctx: Context) -> None:
        response = ctx.response
        assert response is not None
        if self.status is not None:
            response.status = self.status
        self.headers.apply(response.headers)
        if self.body is not None:
            response.body = self.body
