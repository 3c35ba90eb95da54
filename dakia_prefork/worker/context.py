"""What every connection of a worker shares: the current runtime, the pool, the resolver.

Everything that depends on the config version lives in ``runtime`` (worker/runtime.py),
which the worker replaces in one assignment on reload. ``limits``, ``engine`` and
``access_log`` are read through it, so a reload reaches them too; code that serves one
request should read ``ctx.runtime`` once and take ``runtime.limits`` from it, so the whole
request sees one version.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.model import Limits
from ..http.engines import Engine
from ..http.upstream import Resolver, UpstreamPool
from .accesslog import AccessLog
from .runtime import Runtime

if TYPE_CHECKING:
    from ..http.exchange import Exchange
    from ..http.tunnel import Tunnel

__all__ = ["Limits", "ListenerInfo", "WorkerContext"]


@dataclass(frozen=True)
class ListenerInfo:
    gateway: str
    scheme: str
    label: str

    @property
    def scheme_bytes(self) -> bytes:
        return self.scheme.encode()


class WorkerContext:
    def __init__(self, runtime: Runtime, pool: UpstreamPool,
                 resolver: Resolver | None = None) -> None:
        self.runtime = runtime
        self.pool = pool
        self.resolver = resolver if resolver is not None else Resolver()
        self.draining = False
        self.requests = 0
        # The WebSocket tunnels open now (status, metrics, and the drain closes them at
        # graceful_timeout).
        self.tunnels: set[Tunnel] = set()

    @property
    def limits(self) -> Limits:
        """The current version's ``limits`` (``runtime.limits``)."""
        return self.runtime.limits

    @property
    def engine(self) -> Engine:
        """The engine new connections parse with (``runtime.engine``: ``http_parser``)."""
        return self.runtime.engine

    @property
    def access_log(self) -> AccessLog:
        return self.runtime.access_log

    def access(self, exchange: Exchange, status: int, sent: int) -> None:
        """A request is answered (``status``, ``sent`` body bytes): count it in the
        metrics of its route and write its access-log line. The one funnel every answered
        request goes through."""
        self.requests += 1
        now = time.monotonic()
        seconds = now - exchange.started
        upstream_started = exchange.upstream_started
        upstream_seconds = now - upstream_started if upstream_started else -1.0
        body = exchange.request_body
        received = 0 if body is None else body.size
        metrics = exchange.metrics
        if metrics is not None:
            metrics.observe(status, exchange.proxying, seconds, upstream_seconds, received,
                            sent)
        access_log = self.runtime.access_log
        if access_log.enabled:
            access_log.write(exchange, status, sent, seconds, upstream_seconds, received)

    def count_unrouted(self, gateway: str, status: int, sent: int) -> None:
        """Count a request refused before it had a head (malformed, too large, too slow)
        under the gateway's route ``-``; it has no access-log line."""
        runtime = self.runtime.gateways.get(gateway)
        if runtime is not None and runtime.unrouted_metrics is not None:
            runtime.unrouted_metrics.observe(status, False, 0.0, -1.0, 0, sent)
