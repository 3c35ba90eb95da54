"""The Prometheus exposition of a master's metrics, read from its shared memory.

Theory of operation
-------------------
Every number lives in the master's shared-memory segments, so any process that has them
mapped (a worker, for the ``metrics`` interceptor; the admin process, a child of the
master, for ``GET /metrics``) renders the same exposition:

- request counters and histograms: the workers' metric regions (shm/metrics.py), summed
  over every region in use, for the label sets the config has (metrics/keys.py explains
  why the reader derives them from the config rather than reading them back);
- open client connections and WebSocket tunnels: the sums of the control block's worker
  records;
- config version, reloads, worker restarts: the control block's header (the master's);
- upstream nodes: health and requests in flight from the node table (shm/nodestats.py),
  looked up by the node key the balancers use (``<gateway>/<upstream>/<host:port>``),
  never claiming an entry; response latency, failures and ejections from the metric
  regions, which every worker counts per node it tried.

A scrape reads shared memory without a lock: each value is read whole (aligned 8-byte
words), and the sums are as exact as counters read one after the other can be. The text
is prometheus-client's (``generate_latest`` on a private ``CollectorRegistry`` with one
custom ``Collector``): no exposition text is written here.

Use :func:`render`, or a :class:`MetricsReader` kept for many scrapes.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric, SummaryMetricFamily)
from prometheus_client.registry import Collector, CollectorRegistry

from ..config.addresses import describe_address
from ..shm.control import ControlBlock
from ..shm.instance import InstanceSegments
from ..shm.metrics import OVERFLOW_KEY, MetricRegions
from ..shm.nodestats import UNHEALTHY, NodeStats
from .keys import (BUCKET_COUNT, BUCKETS, NODE_EJECTIONS, NODE_FAILURES, NODE_LATENCY,
                   REQUEST_BYTES, REQUEST_DURATION, REQUESTS, RESPONSE_BYTES, STATUS_CLASSES,
                   RATE_LIMIT_REJECTIONS, TLS_FAILURE_REASONS, TLS_HANDSHAKE_FAILURES,
                   UPSTREAM_DURATION, WEBSOCKET_UPGRADES, NodeKeys, RouteKeys, gateway_routes,
                   tls_failure_key)

__all__ = ["CONTENT_TYPE", "MetricsReader", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of what :func:`render` returns: ``generate_latest`` writes the text
format 0.0.4 (prometheus-client's ``CONTENT_TYPE_LATEST`` names 1.0.0 in recent releases,
which differs only in how it escapes names this exposition never has)."""

_LE = [*(repr(float(b)) for b in BUCKETS), "+Inf"]


def render(segments: InstanceSegments, config: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition (``CONTENT_TYPE``) of the master that created
    ``segments``, labelled by ``config`` (a normalised config, or any mapping with its
    ``gateways``: the version the caller serves or the master published).

    Callable from any process that maps the segments: the admin process, a worker. Reads
    only; safe to call concurrently with the workers' writes."""
    return MetricsReader(segments).render(config)


class MetricsReader:
    """The readers of one master's segments, made once for many scrapes."""

    def __init__(self, segments: InstanceSegments) -> None:
        self.regions: MetricRegions = segments.metric_regions()
        self.control = ControlBlock(segments.control)
        self.nodes = NodeStats(segments.nodes)

    def render(self, config: Mapping[str, Any], etcd_revision: int | None = None) -> bytes:
        """``etcd_revision``: on an etcd config_source, the revision the published version
        was made from (the same on every node serving that document)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, config, etcd_revision))
        return generate_latest(registry)


class _Collector(Collector):
    def __init__(self, reader: MetricsReader, config: Mapping[str, Any],
                 etcd_revision: int | None = None) -> None:
        self.reader = reader
        self.gateways: list[Mapping[str, Any]] = list(config.get("gateways") or [])
        self.etcd_revision = etcd_revision

    def collect(self) -> Iterator[Metric]:
        sums = self.reader.regions.sums()
        yield from _requests(sums, [r for g in self.gateways for r in gateway_routes(g)])
        yield from self._process()
        yield from self._nodes(sums)
        yield self._tls(sums)
        overflow = CounterMetricFamily(
            "dakia_metrics_overflow", "Counts a full metrics region could not place "
            "(raise METRIC_CAPACITY if this is not 0).")
        overflow.add_metric([], sums.get(OVERFLOW_KEY, 0))
        yield overflow

    def _process(self) -> Iterator[Metric]:
        control = self.reader.control
        connections = GaugeMetricFamily(
            "dakia_client_connections", "Client connections open, over every worker.")
        records = control.records()
        connections.add_metric([], sum(r.connections for r in records))
        yield connections
        websockets = GaugeMetricFamily(
            "dakia_websocket_connections", "WebSocket tunnels open, over every worker.")
        websockets.add_metric([], sum(r.websockets for r in records))
        yield websockets
        version = GaugeMetricFamily("dakia_config_version",
                                    "The config version the master published.")
        version.add_metric([], control.config_version)
        yield version
        if self.etcd_revision is not None:
            revision = GaugeMetricFamily(
                "dakia_config_etcd_revision",
                "The etcd mod_revision the published config version was made from.")
            revision.add_metric([], self.etcd_revision)
            yield revision
        ok, failed = control.reloads
        reloads = CounterMetricFamily("dakia_reloads", "Reloads since the master started.",
                                      labels=["result"])
        reloads.add_metric(["ok"], ok)
        reloads.add_metric(["failed"], failed)
        yield reloads
        restarts = CounterMetricFamily(
            "dakia_worker_restarts", "Workers that died unasked (crash, kill, missed "
            "heartbeats) and were replaced.")
        restarts.add_metric([], control.worker_restarts)
        yield restarts

    def _tls(self, sums: Mapping[int, int]) -> Metric:
        failures = CounterMetricFamily(
            TLS_HANDSHAKE_FAILURES.removesuffix("_total"), "TLS handshakes that failed, by "
            "listener: refused (a TLS error: a client certificate refused, no shared "
            "protocol or cipher) or incomplete (reset, closed early, timed out).",
            labels=["gateway", "listener", "reason"])
        for gateway in self.gateways:
            name = str(gateway["name"])
            for address in gateway.get("bind_addresses") or []:
                if "tls" not in address:
                    continue
                label = describe_address(address)
                for reason in TLS_FAILURE_REASONS:
                    failures.add_metric([name, label, reason],
                                        sums.get(tls_failure_key(name, label, reason), 0))
        return failures

    def _nodes(self, sums: Mapping[int, int]) -> Iterator[Metric]:
        labels = ["gateway", "upstream", "node"]
        latency = SummaryMetricFamily(
            NODE_LATENCY, "Seconds from sending a request to the node to its response "
            "head, over every worker.", labels=labels)
        failures = CounterMetricFamily(
            NODE_FAILURES.removesuffix("_total"), "Attempts on the node that failed "
            "(refused, reset, timed out): passive health's failures.", labels=labels)
        ejections = CounterMetricFamily(
            NODE_EJECTIONS.removesuffix("_total"), "Times passive health ejected the node.",
            labels=labels)
        get = sums.get
        healthy = GaugeMetricFamily(
            "dakia_upstream_node_healthy", "1 when the node may get requests (not ejected "
            "by passive health, not failing its health check), else 0.", labels=labels)
        active = GaugeMetricFamily(
            "dakia_upstream_node_active_connections",
            "Requests in flight to the node, over every worker.", labels=labels)
        nodes = self.reader.nodes
        now = time.monotonic()
        for gateway in self.gateways:
            for upstream in gateway.get("upstreams") or []:
                for node in upstream.get("upstream_nodes") or []:
                    label = describe_address(node["address"])
                    values = [str(gateway["name"]), str(upstream["name"]), label]
                    count, total, failed, ejected = _node_table(NodeKeys(*values))
                    latency.add_metric(values, get(count, 0), get(total, 0) / 1e6)
                    failures.add_metric(values, get(failed, 0))
                    ejections.add_metric(values, get(ejected, 0))
                    index = nodes.find(f"{values[0]}/{values[1]}/{label}")
                    if index is None:           # no worker has used it yet
                        healthy.add_metric(values, 1)
                        active.add_metric(values, 0)
                        continue
                    ejected_until, health = nodes.gate(index)
                    usable = ejected_until <= now and health != UNHEALTHY
                    healthy.add_metric(values, 1 if usable else 0)
                    active.add_metric(values, nodes.active(index))
        yield from (healthy, active, latency, failures, ejections)


@dataclass(frozen=True)
class _Table:
    """The keys of one route, computed once (digests are the costly part of a scrape)."""

    claimed: int                                 # present once the route was claimed
    requests: tuple[tuple[str, str, int], ...]   # (upstream, status class, key)
    duration: tuple[int, ...]
    duration_sum: int
    request_bytes: int
    response_bytes: int
    upstream: tuple[int, ...]
    upstream_sum: int
    rejections: int
    websocket_upgrades: int


@functools.lru_cache(maxsize=16384)
def _table(keys: RouteKeys) -> _Table:
    proxied = keys.upstream is not None
    return _Table(
        claimed=keys.duration_sum(),
        requests=tuple((upstream, status_class, keys.requests(upstream, status_class))
                       for upstream in keys.upstream_labels for status_class in STATUS_CLASSES),
        duration=tuple(keys.duration_bucket(b) for b in range(BUCKET_COUNT)),
        duration_sum=keys.duration_sum(),
        request_bytes=keys.request_bytes(),
        response_bytes=keys.response_bytes(),
        upstream=tuple(keys.upstream_bucket(b) for b in range(BUCKET_COUNT)) if proxied
        else (),
        upstream_sum=keys.upstream_sum() if proxied else 0,
        rejections=keys.rejections() if proxied else 0,
        websocket_upgrades=keys.websocket_upgrades() if proxied else 0)


@functools.lru_cache(maxsize=16384)
def _node_table(keys: NodeKeys) -> tuple[int, int, int, int]:
    """A node's keys (latency count and sum, failures, ejections), computed once, as
    ``_table`` does for a route's."""
    return keys.latency_count(), keys.latency_sum(), keys.failures(), keys.ejections()


def _requests(sums: Mapping[int, int], routes: list[RouteKeys]) -> Iterator[Metric]:
    """The request metrics of ``routes`` that some worker has claimed (a route's series
    appear with its first request)."""
    requests = CounterMetricFamily(
        REQUESTS.removesuffix("_total"), "Requests answered, by route, upstream (- when "
        "answered before the proxy began) and status class.",
        labels=["gateway", "route", "upstream", "status_class"])
    duration = HistogramMetricFamily(
        REQUEST_DURATION, "Seconds from the request head to the end of the response.",
        labels=["gateway", "route"])
    upstream_duration = HistogramMetricFamily(
        UPSTREAM_DURATION, "Seconds from the first upstream attempt to the end of the "
        "response.", labels=["gateway", "route", "upstream"])
    bytes_in = CounterMetricFamily(REQUEST_BYTES.removesuffix("_total"),
                                   "Request body bytes read from clients.",
                                   labels=["gateway", "route"])
    bytes_out = CounterMetricFamily(RESPONSE_BYTES.removesuffix("_total"),
                                    "Response body bytes sent to clients.",
                                    labels=["gateway", "route"])
    rejections = CounterMetricFamily(RATE_LIMIT_REJECTIONS.removesuffix("_total"),
                                     "Requests a rate_limiter refused (429).",
                                     labels=["gateway", "route"])
    upgrades = CounterMetricFamily(WEBSOCKET_UPGRADES.removesuffix("_total"),
                                   "WebSocket handshakes the upstream accepted (101).",
                                   labels=["gateway", "route"])
    get = sums.get
    for keys in routes:
        table = _table(keys)
        if table.claimed not in sums:
            continue                             # never served: not claimed
        route = [keys.gateway, keys.route]
        for upstream, status_class, key in table.requests:
            requests.add_metric([*route, upstream, status_class], get(key, 0))
        duration.add_metric(route, _buckets(sums, table.duration),
                            get(table.duration_sum, 0) / 1e6)
        bytes_in.add_metric(route, get(table.request_bytes, 0))
        bytes_out.add_metric(route, get(table.response_bytes, 0))
        if keys.upstream is not None:
            upstream_duration.add_metric([*route, keys.upstream],
                                         _buckets(sums, table.upstream),
                                         get(table.upstream_sum, 0) / 1e6)
            rejections.add_metric(route, get(table.rejections, 0))
            upgrades.add_metric(route, get(table.websocket_upgrades, 0))
    yield from (requests, duration, upstream_duration, bytes_in, bytes_out, rejections,
                upgrades)


def _buckets(sums: Mapping[int, int], keys: tuple[int, ...]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs from the per-bucket counts stored."""
    total = 0
    out = []
    for le, key in zip(_LE, keys):
        total += sums.get(key, 0)
        out.append((le, float(total)))
    return out
