"""``metrics``: answer with the Prometheus exposition of the gateway's metrics.

``{name: metrics, filter: metrics_path}`` with a filter such as ``path: /metrics``: the
requests it applies to get ``200`` with the text format (``GET``, ``HEAD``; other methods
``405``); the upstream is not called. Scope it with a filter, and restrict it
(``ip_restriction``, an auth interceptor listed before it) as the numbers are not public.

The metrics are those of every worker of the master (shared memory), the same as the
admin listener's ``GET /metrics``; the worker renders them with the labels of the config
version it serves (metrics/exposition.py).
"""
from __future__ import annotations

from typing import Any, Callable

from .base import Interceptor, register
from .context import Context, Reply
from .resources import Resources

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""metrics.exposition.CONTENT_TYPE (not imported here: a config check loads this module,
and needs nothing of prometheus-client)."""
_ALLOW = [("allow", "GET, HEAD")]


@register
class Metrics(Interceptor):
    name = "metrics"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        self._render: Callable[[], bytes] | None = None

    def attach(self, resources: Resources, ident: str) -> None:
        self._render = resources.metrics

    def request_filter(self, ctx: Context) -> Reply | None:
        method = ctx.request.method
        if method not in ("GET", "HEAD"):
            return Reply(405, "405 Method Not Allowed\n", _ALLOW)
        render = self._render
        if render is None:
            return Reply(503, "503 Service Unavailable: no metrics in this process\n")
        return Reply(200, render(), [("content-type", CONTENT_TYPE)])
