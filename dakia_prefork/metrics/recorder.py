"""The worker side of the request metrics: one ``RouteMetrics`` per route, counting into
the worker's own region of shared memory.

Theory of operation
-------------------
A ``Runtime`` (one config version) builds a ``RouteMetrics`` for every route of every
gateway (metrics/keys.py names them) around the worker's ``MetricWriter``. Building
claims nothing: the first request of a route claims all of that route's entries
(``_claim``, ~46 of them) and keeps their word offsets in flat attributes, so from then
on a request costs a handful of indexed adds on the shared ``memoryview``, and no lookup
by label. A reload builds new objects; entries already claimed are found again, and
their values carry on (the region outlives config versions and workers).

The request path calls ``observe`` once per request, from the access-log funnel
(worker/context.py), ``rejected`` when a rate limiter refused one, and ``upgraded`` when
an upstream accepted a WebSocket handshake (its ``observe`` comes when the tunnel ends).
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from ..shm.metrics import MetricWriter
from .keys import (BUCKET_BOUNDS_US, BUCKET_COUNT, NO_UPSTREAM, STATUS_CLASSES, NodeKeys,
                   RouteKeys, gateway_routes, tls_failure_key)


class RouteMetrics:
    """The counters of one (gateway, route) in one worker's region."""

    __slots__ = ("keys", "_writer", "_words", "_claimed", "_proxied", "_local", "_duration",
                 "_duration_sum", "_upstream", "_upstream_sum", "_bytes_in", "_bytes_out",
                 "_rejections", "_upgrades")

    def __init__(self, writer: MetricWriter, keys: RouteKeys) -> None:
        self.keys = keys
        self._writer = writer
        self._words = writer.words
        self._claimed = False
        self._proxied: list[int] = []       # requests by status class, upstream label set
        self._local: list[int] = []         # the same, upstream "-"
        self._duration: list[int] = []      # request duration buckets
        self._duration_sum = 0
        self._upstream: list[int] = []      # upstream duration buckets
        self._upstream_sum = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._rejections = 0
        self._upgrades = 0

    def _claim(self) -> None:
        slot = self._writer.slot
        keys = self.keys
        classes = STATUS_CLASSES
        self._local = [slot(keys.requests(NO_UPSTREAM, c)) for c in classes]
        if keys.upstream is not None:
            self._proxied = [slot(keys.requests(keys.upstream, c)) for c in classes]
            self._upstream = [slot(keys.upstream_bucket(b)) for b in range(BUCKET_COUNT)]
            self._upstream_sum = slot(keys.upstream_sum())
            self._rejections = slot(keys.rejections())
            self._upgrades = slot(keys.websocket_upgrades())
        else:
            self._proxied = self._local
        self._duration = [slot(keys.duration_bucket(b)) for b in range(BUCKET_COUNT)]
        self._duration_sum = slot(keys.duration_sum())
        self._bytes_in = slot(keys.request_bytes())
        self._bytes_out = slot(keys.response_bytes())
        self._claimed = True

    def observe(self, status: int, proxied: bool, seconds: float, upstream_seconds: float,
                bytes_in: int, bytes_out: int) -> None:
        """Count one request: its status, whether the proxy began (the ``upstream`` label),
        its duration, the upstream part (negative: no upstream attempt), body bytes in
        and out."""
        if not self._claimed:
            self._claim()
        words = self._words
        status_class = status // 100 - 1
        if status_class < 0:
            status_class = 0
        elif status_class > 4:
            status_class = 4
        at = (self._proxied if proxied else self._local)[status_class]
        words[at] += 1
        micros = int(seconds * 1_000_000)
        at = self._duration[bisect_left(BUCKET_BOUNDS_US, micros)]
        words[at] += 1
        at = self._duration_sum
        words[at] += micros
        if upstream_seconds >= 0.0 and self._upstream:
            micros = int(upstream_seconds * 1_000_000)
            at = self._upstream[bisect_left(BUCKET_BOUNDS_US, micros)]
            words[at] += 1
            at = self._upstream_sum
            words[at] += micros
        if bytes_in:
            at = self._bytes_in
            words[at] += bytes_in
        if bytes_out:
            at = self._bytes_out
            words[at] += bytes_out

    def rejected(self) -> None:
        """A rate limiter refused a request of this route."""
        if not self._claimed:
            self._claim()
        if self._rejections:
            words = self._words
            at = self._rejections
            words[at] += 1

    def upgraded(self) -> None:
        """An upstream of this route accepted a WebSocket handshake (answered 101)."""
        if not self._claimed:
            self._claim()
        if self._upgrades:
            words = self._words
            at = self._upgrades
            words[at] += 1


class NodeMetrics:
    """The counters of one upstream node in one worker's region: response heads and their
    latency, passive-health failures, ejections. Claimed on the node's first attempt."""

    __slots__ = ("keys", "_writer", "_words", "_latency_sum", "_latency_count", "_failures",
                 "_ejections")

    def __init__(self, writer: MetricWriter, keys: NodeKeys) -> None:
        self.keys = keys
        self._writer = writer
        self._words = writer.words
        self._latency_sum = 0              # 0: not claimed yet (a value's offset is never
        self._latency_count = 0            # 0: word 0 holds a key)
        self._failures = 0
        self._ejections = 0

    def _claim(self) -> None:
        slot = self._writer.slot
        keys = self.keys
        self._latency_sum = slot(keys.latency_sum())
        self._latency_count = slot(keys.latency_count())
        self._failures = slot(keys.failures())
        self._ejections = slot(keys.ejections())

    def observe(self, seconds: float, ok: bool) -> None:
        """One attempt on the node ended: with a response head ``seconds`` after the
        request was sent (``ok``), or as a failure (refused, reset, timed out)."""
        if not self._latency_sum:
            self._claim()
        words = self._words
        if ok:
            at = self._latency_count
            words[at] += 1
            at = self._latency_sum
            words[at] += int(seconds * 1_000_000)
        else:
            at = self._failures
            words[at] += 1

    def ejected(self) -> None:
        """Passive health ejected the node after this worker's failure."""
        if not self._latency_sum:
            self._claim()
        words = self._words
        at = self._ejections
        words[at] += 1


class ListenerMetrics:
    """The failed TLS handshakes of one listener in one worker's region (claimed on the
    first failure: a rare event, so no slot is kept in advance)."""

    __slots__ = ("_writer", "gateway", "listener")

    def __init__(self, writer: MetricWriter, gateway: str, listener: str) -> None:
        self._writer = writer
        self.gateway = gateway
        self.listener = listener

    def handshake_failed(self, reason: str) -> None:
        writer = self._writer
        writer.add(writer.slot(tls_failure_key(self.gateway, self.listener, reason)))


class GatewayMetrics:
    """The ``RouteMetrics`` of one gateway: ``unrouted`` (route ``"-"``) and ``routes``
    by the index ``GatewayRouter.match`` returns."""

    __slots__ = ("unrouted", "routes")

    def __init__(self, writer: MetricWriter, gateway: Mapping[str, Any]) -> None:
        made = [RouteMetrics(writer, keys) for keys in gateway_routes(gateway)]
        self.unrouted = made[0]
        self.routes: tuple[RouteMetrics, ...] = tuple(made[1:])
