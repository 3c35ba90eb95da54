"""The metrics collector over real shared-memory segments: what workers' recorders count
(metrics/recorder.py), the exposition (metrics/exposition.py) sums, labels and renders."""
from __future__ import annotations

import os
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dakia_prefork.config import validate
from dakia_prefork.interceptors.metrics import CONTENT_TYPE as MetricsInterceptorType
from dakia_prefork.metrics.exposition import CONTENT_TYPE, render
from dakia_prefork.metrics.keys import BUCKETS, NodeKeys, gateway_routes, routes_of
from dakia_prefork.metrics.recorder import GatewayMetrics, NodeMetrics
from dakia_prefork.routing.router import GatewayRouter
from dakia_prefork.shm import Segment
from dakia_prefork.shm.control import ControlBlock
from dakia_prefork.shm.instance import InstanceSegments
from dakia_prefork.shm.metrics import OVERFLOW_KEY, MetricRegions
from dakia_prefork.shm.nodestats import NodeStats
from dakia_prefork.shm.segment import segment_name

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _config(**gateway: Any) -> dict[str, Any]:
    raw = {"gateways": [{
        "name": "g",
        "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
        "upstreams": [{"name": "app", "default": True,
                       "upstream_nodes": [{"address": {"host": "10.0.0.1", "port": 80}},
                                          {"address": {"host": "10.0.0.2", "port": 80}}]}],
        "routers": [{"upstream": "app", "filter": "api", "name": "api"},
                    {"upstream": "app"}],
        "filters": [{"name": "api", "path": {"$starts_with": "/api"}}],
        **gateway}]}
    config, _notices = validate(raw, base_dir="/")
    return config


@pytest.fixture
def segments(tmp_path):
    made = InstanceSegments.create(str(tmp_path), os.getpid())
    ControlBlock(made.control).initialise(os.getpid())
    yield made
    made.unlink()
    for segment in made.all():
        segment.close()


def _parse(text: bytes) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for got, value in samples.get(name, [])
               if all(got.get(k) == v for k, v in labels.items()))


def test_route_labels_are_names_or_indexes_in_router_order() -> None:
    config = _config()
    gateway = config["gateways"][0]
    assert routes_of(gateway) == [("api", "app"), ("1", "app")]
    assert [k.route for k in gateway_routes(gateway)] == ["-", "api", "1"]
    # The index the router matches is the index of the route's label.
    router = GatewayRouter(gateway)
    assert router.targets == ("app", "app")
    without = _config(routers=[])["gateways"][0]
    assert routes_of(without) == [("default", "app")]
    assert GatewayRouter(without).targets == ("app",)


def test_two_workers_counts_are_summed_and_labelled(segments) -> None:
    config = _config()
    gateway = config["gateways"][0]
    regions = segments.metric_regions()
    first = GatewayMetrics(regions.writer(0), gateway)
    second = GatewayMetrics(regions.writer(3), gateway)
    for worker, count in ((first, 7), (second, 5)):
        for _ in range(count):
            worker.routes[0].observe(200, True, 0.003, 0.002, 10, 100)
    second.routes[0].observe(502, True, 0.2, 0.2, 0, 20)
    first.routes[0].observe(401, False, 0.0001, -1.0, 0, 5)
    first.routes[0].rejected()
    first.unrouted.observe(404, False, 0.0001, -1.0, 0, 24)
    samples = _parse(render(segments, config))

    assert _value(samples, "dakia_requests_total", gateway="g", route="api", upstream="app",
                  status_class="2xx") == 12
    assert _value(samples, "dakia_requests_total", route="api", upstream="app",
                  status_class="5xx") == 1
    assert _value(samples, "dakia_requests_total", route="api", upstream="-",
                  status_class="4xx") == 1
    assert _value(samples, "dakia_requests_total", route="-", upstream="-",
                  status_class="4xx") == 1
    # Every status class of a route that served is there, at zero where nothing came.
    assert len([1 for labels, _ in samples["dakia_requests_total"]
                if labels["route"] == "api"]) == 10
    # Route "1" served nothing: none of its series is exposed.
    assert not [1 for labels, _ in samples["dakia_requests_total"] if labels["route"] == "1"]
    # Histograms: cumulative buckets, the count is +Inf's, the sum in seconds.
    le = {labels["le"]: value
          for labels, value in samples["dakia_request_duration_seconds_bucket"]
          if labels["route"] == "api"}
    assert list(le) == [*(repr(float(b)) for b in BUCKETS), "+Inf"]
    assert le["0.005"] == 13 and le["0.25"] == 14 and le["+Inf"] == 14
    assert _value(samples, "dakia_request_duration_seconds_count", route="api") == 14
    assert _value(samples, "dakia_request_duration_seconds_sum", route="api") == \
        pytest.approx(12 * 0.003 + 0.2 + 0.0001, abs=1e-5)
    # The upstream histogram has only the requests that had an upstream attempt.
    assert _value(samples, "dakia_upstream_duration_seconds_count", route="api",
                  upstream="app") == 13
    up = {labels["le"]: value
          for labels, value in samples["dakia_upstream_duration_seconds_bucket"]}
    assert up["0.005"] == 12 and up["0.1"] == 12 and up["0.25"] == 13
    assert _value(samples, "dakia_request_bytes_total", route="api") == 120
    assert _value(samples, "dakia_response_bytes_total", route="api") == 12 * 100 + 20 + 5
    assert _value(samples, "dakia_response_bytes_total", route="-") == 24
    assert _value(samples, "dakia_rate_limit_rejections_total", route="api") == 1
    assert _value(samples, "dakia_metrics_overflow_total") == 0


def test_a_reload_keeps_counting_in_the_same_entries(segments) -> None:
    config = _config()
    gateway = config["gateways"][0]
    writer = segments.metric_regions().writer(0)
    GatewayMetrics(writer, gateway).routes[0].observe(200, True, 0.01, 0.01, 0, 1)
    GatewayMetrics(writer, gateway).routes[0].observe(200, True, 0.01, 0.01, 0, 1)
    samples = _parse(render(segments, config))
    assert _value(samples, "dakia_requests_total", route="api") == 2


def test_process_metrics_come_from_the_control_block(segments) -> None:
    control = ControlBlock(segments.control)
    control.publish_version(7)
    control.count_reload(True)
    control.count_reload(True)
    control.count_reload(False)
    control.count_worker_restart()
    control.boot(0, 0, 0, 1, 7)
    control.set_pid(0, 4242)
    control.boot(1, 0, 1, 1, 7)
    control.set_pid(1, 4243)
    control.set_connections(0, 3)
    control.set_connections(1, 4)
    samples = _parse(render(segments, _config()))
    assert _value(samples, "dakia_config_version") == 7
    assert _value(samples, "dakia_reloads_total", result="ok") == 2
    assert _value(samples, "dakia_reloads_total", result="failed") == 1
    assert _value(samples, "dakia_worker_restarts_total") == 1
    assert _value(samples, "dakia_client_connections") == 7


def test_node_health_and_requests_in_flight(segments) -> None:
    stats = NodeStats(segments.nodes, record=0)
    stats.note_record(0)
    first = stats.index_for("g/app/10.0.0.1:80")
    assert first is not None
    stats.begin(first)
    stats.begin(first)
    second = stats.index_for("g/app/10.0.0.2:80")
    assert second is not None
    assert stats.observe(second, 0.0, False, time.monotonic(), 1, 60.0)   # ejected
    samples = _parse(render(segments, _config()))
    healthy = {labels["node"]: value for labels, value in samples["dakia_upstream_node_healthy"]}
    assert healthy == {"10.0.0.1:80": 1, "10.0.0.2:80": 0}
    assert _value(samples, "dakia_upstream_node_active_connections", gateway="g",
                  upstream="app", node="10.0.0.1:80") == 2
    assert _value(samples, "dakia_upstream_node_active_connections", node="10.0.0.2:80") == 0


def test_rendering_claims_nothing(segments) -> None:
    config = _config()
    render(segments, config)
    regions = segments.metric_regions()
    assert not any(regions.used(record) for record in range(regions.records))
    assert NodeStats(segments.nodes).used() == 0
    # The interceptor names the same type without importing prometheus-client.
    assert CONTENT_TYPE == MetricsInterceptorType == "text/plain; version=0.0.4; charset=utf-8"


def test_a_full_region_counts_its_overflow(tmp_path) -> None:
    segment = Segment(segment_name(str(tmp_path), os.getpid(), "m"),
                      MetricRegions.size_for(1, 16), create=True)
    try:
        regions = MetricRegions(segment, 1, 16)
        gateway = _config()["gateways"][0]
        route = GatewayMetrics(regions.writer(0), gateway).routes[0]
        route.observe(200, True, 0.01, 0.01, 0, 0)
        assert regions.total(OVERFLOW_KEY) > 0
    finally:
        segment.unlink()
        segment.close()


def test_node_latency_failures_and_ejections_are_summed_over_workers(segments) -> None:
    regions = segments.metric_regions()
    keys = NodeKeys("g", "app", "10.0.0.1:80")
    first, second = NodeMetrics(regions.writer(0), keys), NodeMetrics(regions.writer(1), keys)
    first.observe(0.004, True)
    first.observe(0.006, True)
    second.observe(0.010, True)
    second.observe(0.0, False)
    second.ejected()
    samples = _parse(render(segments, _config()))
    one = {"gateway": "g", "upstream": "app", "node": "10.0.0.1:80"}
    assert _value(samples, "dakia_upstream_node_latency_seconds_count", **one) == 3
    assert _value(samples, "dakia_upstream_node_latency_seconds_sum", **one) == \
        pytest.approx(0.020)
    assert _value(samples, "dakia_upstream_node_failures_total", **one) == 1
    assert _value(samples, "dakia_upstream_node_ejections_total", **one) == 1
    # A node no worker tried is there at zero, as its health and in-flight count are.
    other = dict(one, node="10.0.0.2:80")
    assert _value(samples, "dakia_upstream_node_latency_seconds_count", **other) == 0
    assert ("dakia_upstream_node_ejections_total", other) in [
        (name, labels) for name, rows in samples.items() for labels, _ in rows]


def test_tls_failure_reasons_are_those_the_handshake_gives() -> None:
    from dakia_prefork.metrics.keys import TLS_FAILURE_REASONS
    from dakia_prefork.tls import handshake
    assert TLS_FAILURE_REASONS == (handshake.REFUSED, handshake.INCOMPLETE)
