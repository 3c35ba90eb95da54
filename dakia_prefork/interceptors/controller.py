"""``controller``: the admin API on a gateway's own routes, as Dakia's controller serves it.

::

    interceptors:
      - name: controller
        filter: controller               # e.g. path: {$starts_with: /controller}
        config: {strip_prefix: /controller}   # optional: /controller/config -> /config

A request this interceptor runs for is sent to the admin process (the top-level ``admin``
listener, which must be configured) instead of the upstream its router chose: it sets
``ctx.route`` to :data:`ADMIN_UPSTREAM`, an upstream each worker builds for a gateway with
a controller (worker/runtime.py). It is proxied like any request (streamed body, the
gateway's limits and timeouts, X-Forwarded-For), and the admin API answers it with its own
rules: the same token, the same validation, the same audit line, which names the client
the gateway saw. Nothing of the API runs in a worker.
"""
from __future__ import annotations

from typing import Any

from .base import Interceptor, register
from .context import Context, Reply

ADMIN_UPSTREAM = "(admin)"
"""The name of the upstream a gateway with a controller sends its requests to."""


@register
class Controller(Interceptor):
    name = "controller"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        prefix = (entry.get("config") or {}).get("strip_prefix")
        self.strip_prefix: str | None = prefix.rstrip("/") or None if prefix else None

    def request_filter(self, ctx: Context) -> Reply | None:
        ctx.route = ADMIN_UPSTREAM
        prefix = self.strip_prefix
        if prefix is not None:
            path = ctx.request.path
            if path == prefix or path.startswith(prefix + "/"):
                ctx.upstream_request.path = path[len(prefix):] or "/"
        return None
