"""What every connection of a worker shares: engine, limits, current runtime, pool, logs."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..message.heads import RequestHead
from ..message.request import Request
from ..http.upstream import Resolver, UpstreamPool
from .accesslog import AccessLog
from .runtime import Runtime


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    max_body_bytes: int | None
    client_header_timeout: float
    client_body_timeout: float
    keepalive_timeout: float
    send_timeout: float
    max_connections: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Limits":
        limits = config.get("limits", {})
        return cls(
            max_header_bytes=int(limits.get("max_header_bytes", 65536)),
            max_body_bytes=limits.get("max_body_bytes"),
            client_header_timeout=float(limits.get("client_header_timeout", 60)),
            client_body_timeout=float(limits.get("client_body_timeout", 60)),
            keepalive_timeout=float(limits.get("keepalive_timeout", 75)),
            send_timeout=float(limits.get("send_timeout", 60)),
            max_connections=int(limits.get("max_connections", 10000)),
        )


@dataclass(frozen=True)
class ListenerInfo:
    gateway: str
    scheme: str
    label: str

    @property
    def scheme_bytes(self) -> bytes:
        return self.scheme.encode()


class WorkerContext:
    def __init__(self, engine: Any, limits: Limits, runtime: Runtime, pool: UpstreamPool,
                 access_log: AccessLog, resolver: Resolver | None = None) -> None:
        self.engine = engine
        self.limits = limits
        self.runtime = runtime
        self.pool = pool
        self.resolver = resolver if resolver is not None else Resolver()
        self.access_log = access_log
        self.draining = False
        self.requests = 0

    def access(self, peer: str, head: RequestHead, request: Request | None, status: int,
               sent: int, started: float) -> None:
        self.requests += 1
        if self.access_log.enabled:
            host = request.host if request is not None else "-"
            self.access_log.write(peer, head, host, status, sent, time.monotonic() - started)
