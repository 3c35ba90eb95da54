"""The request metrics' names, label sets and shared-memory keys, derived from a config.

Theory of operation
-------------------
Workers count into their own region of the metrics segment (shm/metrics.py), where an
entry is found by a 64-bit key: a digest of the metric's name and label values
(``metric_key``). A digest cannot be read back into labels, so the reader must know which
label sets to ask for. It derives them from the config, exactly as the writer does, with
the functions of this module, which both sides call:

- per gateway, its routes: one per router, labelled by the router's ``name`` or else its
  index (``"0"``, ``"1"``...), never by a path; a gateway without routers has the one
  route ``"default"`` to its default upstream. Plus the route ``"-"`` for requests the
  gateway answers before any route is chosen (400, 404 no host or no route);
- per route, its upstream (each router names one) and ``"-"`` (the request was answered
  before the proxy began: an interceptor's answer, such as a 401 or a 429);
- five status classes, ``1xx`` .. ``5xx``; and the fixed histogram buckets below.

Per upstream node (``NodeKeys``): its response-head latency (sum and count), its
passive-health failures and its ejections.

So every label set is bounded by the config: about 46 keys per route in all, and 4 per
upstream node. A worker claims a route's keys the first time that route serves a
request (``route_keys``), and a node's the first time it tries that node, so the region
holds only what was used, and a route's series appear together, at zero.

Histograms store one counter per bucket (not cumulative: one add per request) and the
sum of the observations in microseconds; the reader makes the buckets cumulative and the
count is the ``+Inf`` bucket's. Counters live as long as the master (regions are never
cleared), so a route that a reload removes and a later reload brings back carries on
from its old values; a route the current config does not have is not exposed.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..shm.metrics import metric_key

REQUESTS = "dakia_requests_total"
REQUEST_DURATION = "dakia_request_duration_seconds"
UPSTREAM_DURATION = "dakia_upstream_duration_seconds"
REQUEST_BYTES = "dakia_request_bytes_total"
RESPONSE_BYTES = "dakia_response_bytes_total"
RATE_LIMIT_REJECTIONS = "dakia_rate_limit_rejections_total"
WEBSOCKET_UPGRADES = "dakia_websocket_upgrades_total"
NODE_LATENCY = "dakia_upstream_node_latency_seconds"
NODE_FAILURES = "dakia_upstream_node_failures_total"
NODE_EJECTIONS = "dakia_upstream_node_ejections_total"
TLS_HANDSHAKE_FAILURES = "dakia_tls_handshake_failures_total"
TLS_FAILURE_REASONS: tuple[str, ...] = ("refused", "incomplete")
"""tls/handshake.py's REFUSED and INCOMPLETE (not imported: the reader of the metrics
needs nothing of the TLS code)."""

BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                              1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the latency histograms' buckets, ``+Inf`` after the last:
Prometheus' default buckets (5 ms to 10 s) with three below them, since a gateway's own
answers and a near upstream's take well under 5 ms, and a quantile inside the first
bucket can only be guessed (the dashboard would show 2.5 ms for every p50)."""
BUCKET_BOUNDS_US: tuple[int, ...] = tuple(round(b * 1_000_000) for b in BUCKETS)
"""The same bounds in microseconds, as the regions count time."""
BUCKET_COUNT = len(BUCKETS) + 1

STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
NO_ROUTE = "-"
"""The route of requests answered before a route was chosen."""
NO_UPSTREAM = "-"
"""The upstream of requests answered before the proxy began."""
DEFAULT_ROUTE = "default"
"""The route of a gateway without routers, to its default upstream."""


def route_label(index: int, router: Mapping[str, Any]) -> str:
    """A router's label: its ``name``, else its index."""
    name = router.get("name")
    return str(index) if name is None else str(name)


def routes_of(gateway: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, upstream)`` of each route of a normalised gateway, in router order (the
    index ``GatewayRouter.match`` returns)."""
    routers = gateway.get("routers") or []
    if routers:
        return [(route_label(i, r), str(r["upstream"])) for i, r in enumerate(routers)]
    default = next((u["name"] for u in gateway.get("upstreams") or [] if u.get("default")),
                   None)
    return [] if default is None else [(DEFAULT_ROUTE, str(default))]


@dataclass(frozen=True)
class RouteKeys:
    """The keys of one route of one gateway; ``upstream`` None for the route ``"-"``."""

    gateway: str
    route: str
    upstream: str | None

    def requests(self, upstream: str, status_class: str) -> int:
        return metric_key(REQUESTS, self.gateway, self.route, upstream, status_class)

    def duration_bucket(self, bucket: int) -> int:
        return metric_key(REQUEST_DURATION, self.gateway, self.route, str(bucket))

    def duration_sum(self) -> int:
        return metric_key(REQUEST_DURATION + "_sum", self.gateway, self.route)

    def upstream_bucket(self, bucket: int) -> int:
        assert self.upstream is not None
        return metric_key(UPSTREAM_DURATION, self.gateway, self.route, self.upstream,
                          str(bucket))

    def upstream_sum(self) -> int:
        assert self.upstream is not None
        return metric_key(UPSTREAM_DURATION + "_sum", self.gateway, self.route,
                          self.upstream)

    def request_bytes(self) -> int:
        return metric_key(REQUEST_BYTES, self.gateway, self.route)

    def response_bytes(self) -> int:
        return metric_key(RESPONSE_BYTES, self.gateway, self.route)

    def rejections(self) -> int:
        return metric_key(RATE_LIMIT_REJECTIONS, self.gateway, self.route)

    def websocket_upgrades(self) -> int:
        return metric_key(WEBSOCKET_UPGRADES, self.gateway, self.route)

    @property
    def upstream_labels(self) -> tuple[str, ...]:
        """The values of the ``upstream`` label this route's requests take."""
        return (NO_UPSTREAM,) if self.upstream is None else (self.upstream, NO_UPSTREAM)

    def all_keys(self) -> Iterator[int]:
        """Every key of this route (what a worker claims on the route's first request)."""
        for upstream in self.upstream_labels:
            for status_class in STATUS_CLASSES:
                yield self.requests(upstream, status_class)
        for bucket in range(BUCKET_COUNT):
            yield self.duration_bucket(bucket)
        yield self.duration_sum()
        yield self.request_bytes()
        yield self.response_bytes()
        if self.upstream is not None:
            for bucket in range(BUCKET_COUNT):
                yield self.upstream_bucket(bucket)
            yield self.upstream_sum()
            yield self.rejections()
            yield self.websocket_upgrades()


@dataclass(frozen=True)
class NodeKeys:
    """The keys of one upstream node of one gateway (``node``: its label, as
    status.node_label gives it). Bounded by the config as the routes' keys are."""

    gateway: str
    upstream: str
    node: str

    def latency_sum(self) -> int:
        return metric_key(NODE_LATENCY + "_sum", self.gateway, self.upstream, self.node)

    def latency_count(self) -> int:
        return metric_key(NODE_LATENCY + "_count", self.gateway, self.upstream, self.node)

    def failures(self) -> int:
        return metric_key(NODE_FAILURES, self.gateway, self.upstream, self.node)

    def ejections(self) -> int:
        return metric_key(NODE_EJECTIONS, self.gateway, self.upstream, self.node)


def tls_failure_key(gateway: str, listener: str, reason: str) -> int:
    """The key of a TLS listener's failed handshakes for ``reason`` (``listener``: its
    label, as describe_address gives it)."""
    return metric_key(TLS_HANDSHAKE_FAILURES, gateway, listener, reason)


def gateway_routes(gateway: Mapping[str, Any]) -> list[RouteKeys]:
    """The routes of a normalised gateway, ``"-"`` first then in router order."""
    name = str(gateway["name"])
    return [RouteKeys(name, NO_ROUTE, None),
            *(RouteKeys(name, label, upstream) for label, upstream in routes_of(gateway))]
