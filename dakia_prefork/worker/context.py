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

from ..config.model import Limits
from ..http.engines import Engine
from ..http.upstream import Resolver, UpstreamPool
from ..message.heads import RequestHead
from ..message.request import Request
from .accesslog import AccessLog
from .runtime import Runtime

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

    def access(self, peer: str, head: RequestHead, request: Request | None, status: int,
               sent: int, started: float) -> None:
        self.requests += 1
        access_log = self.runtime.access_log
        if access_log.enabled:
            host = request.host if request is not None else "-"
            access_log.write(peer, head, host, status, sent, time.monotonic() - started)
