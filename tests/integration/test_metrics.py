"""Prometheus metrics through the running gateway: counted by every worker in shared memory,
served by the ``metrics`` interceptor, parsed with prometheus-client's own parser.

Every request below goes over a connection of its own, so the kernel spreads them over
both workers (each worker accepts on its own SO_REUSEPORT socket); the tests check that
both served some, from the requests each worker reports in the control block.
"""
from __future__ import annotations

import os
import signal
import socket
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from .harness import Gateway, node, wait_until

N = 40
BODY = b"x" * 100
UPSTREAM_TEXT = "hello"           # the upstream's body: 5 bytes


def _gateway_spec() -> dict[str, Any]:
    return {
        "routers": [
            {"name": "metrics", "upstream": "app", "filter": "metrics_path"},
            {"name": "api", "upstream": "app", "filter": "api"},
            {"upstream": "app", "filter": "limited"},         # unnamed: labelled "2"
        ],
        "filters": [
            {"name": "metrics_path", "path": "/metrics"},
            {"name": "api", "path": {"$starts_with": "/api"}},
            {"name": "limited", "path": {"$starts_with": "/limited"}},
        ],
        "interceptors": [
            {"name": "metrics", "filter": "metrics_path"},
            {"name": "rate_limiter", "filter": "limited",
             "config": {"capacity": 2, "refill_rate": 1, "refill_interval": 3600000}},
        ],
    }


def _start(upstreams, gateways, engine: str = "h11") -> tuple[Gateway, Any]:
    up = upstreams(name=UPSTREAM_TEXT)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  workers=2, gateway=_gateway_spec())
    return gw, up


def _scrape(gw: Gateway) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the exposition by sample name: ``[(labels, value), ...]``."""
    response = requests.get(gw.url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
           **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for got, value in samples.get(name, [])
               if all(got.get(k) == v for k, v in labels.items()))


def _served_by_each(gw: Gateway, total: int) -> list[int]:
    """Requests each worker reports (heartbeats every second), once they add up to
    ``total``."""
    def counts() -> list[int] | None:
        served = [w["requests"] for w in gw.workers()]
        return served if sum(served) == total else None
    return wait_until(counts, 10, f"the workers to report {total} requests")


def test_requests_over_two_workers_are_counted_exactly(engine, upstreams, gateways):
    gw, _up = _start(upstreams, gateways, engine)
    posts = 10
    for i in range(N):
        if i < posts:
            response = requests.post(gw.url + f"/api/{i}", data=BODY, timeout=10)
        else:
            response = requests.get(gw.url + f"/api/{i}", timeout=10)
        assert response.status_code == 200 and response.text == UPSTREAM_TEXT
    assert requests.get(gw.url + "/nothing/here", timeout=10).status_code == 404
    limited = [requests.get(gw.url + "/limited", timeout=10).status_code for _ in range(5)]
    assert limited == [200, 200, 429, 429, 429]
    served = _served_by_each(gw, N + 1 + 5)
    assert len(served) == 2 and all(count > 0 for count in served), served

    samples = _scrape(gw)
    requests_total = "dakia_requests_total"
    assert _value(samples, requests_total, gateway="test", route="api") == N
    assert _value(samples, requests_total, route="api", upstream="app",
                  status_class="2xx") == N
    assert _value(samples, "dakia_request_duration_seconds_count", route="api") == N
    assert _value(samples, "dakia_request_duration_seconds_bucket", route="api",
                  le="+Inf") == N
    assert _value(samples, "dakia_request_duration_seconds_sum", route="api") > 0
    assert _value(samples, "dakia_upstream_duration_seconds_count", route="api",
                  upstream="app") == N
    assert _value(samples, "dakia_request_bytes_total", route="api") == posts * len(BODY)
    assert _value(samples, "dakia_response_bytes_total", route="api") == \
        N * len(UPSTREAM_TEXT)
    # The 404: no route, counted under route "-" and upstream "-".
    assert _value(samples, requests_total, route="-", upstream="-", status_class="4xx") == 1
    assert _value(samples, requests_total, route="-") == 1
    # The limiter's route (unnamed: its index): 2 proxied, 3 refused before the proxy.
    assert _value(samples, requests_total, route="2", upstream="app", status_class="2xx") == 2
    assert _value(samples, requests_total, route="2", upstream="-", status_class="4xx") == 3
    assert _value(samples, "dakia_rate_limit_rejections_total", route="2") == 3
    assert _value(samples, "dakia_rate_limit_rejections_total", route="api") == 0
    assert _value(samples, "dakia_upstream_duration_seconds_count", route="2") == 2
    # Only routes that served appear, and every label is bounded: no path anywhere. The
    # scrape counts itself once it is answered: the first is in the second.
    assert {labels["route"] for labels, _ in samples[requests_total]} == {"-", "api", "2"}
    again = _scrape(gw)
    assert {labels["route"] for labels, _ in again[requests_total]} == \
        {"-", "metrics", "api", "2"}
    assert _value(again, requests_total, route="metrics", upstream="-",
                  status_class="2xx") == 1
    assert _value(again, requests_total, route="api") == N


def test_process_metrics_reloads_restarts_connections_and_nodes(upstreams, gateways):
    gw, up = _start(upstreams, gateways)
    samples = _scrape(gw)
    assert _value(samples, "dakia_config_version") == 1
    assert _value(samples, "dakia_reloads_total", result="ok") == 0
    assert _value(samples, "dakia_reloads_total", result="failed") == 0
    assert _value(samples, "dakia_worker_restarts_total") == 0
    node_label = f"127.0.0.1:{up.port}"
    assert _value(samples, "dakia_upstream_node_healthy", gateway="test", upstream="app",
                  node=node_label) == 1
    assert _value(samples, "dakia_upstream_node_active_connections", node=node_label) == 0

    # Reloads: one that succeeds, one that fails.
    gw.config["gateways"][0]["routers"][1]["name"] = "api-v2"
    gw.write_config()
    done = gw.cli("reload")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: {w["config_version"] for w in gw.workers()} == {2}, 10,
               "every worker on v2")
    with open(gw.config_path, "a") as f:
        f.write("\nnot_a_setting: 1\n")
    assert gw.cli("reload").returncode == 1        # refused by the CLI's own check...
    gw.signal(signal.SIGHUP)                       # ...and by the master, which counts it
    assert requests.get(gw.url + "/api/renamed", timeout=10).status_code == 200
    samples = wait_until(lambda: (lambda s: s if _value(s, "dakia_reloads_total",
                                                        result="failed") == 1 else None)(
        _scrape(gw)), 10, "the failed reload to be counted")
    assert _value(samples, "dakia_config_version") == 2
    assert _value(samples, "dakia_reloads_total", result="ok") == 1
    # The renamed router is labelled by its new name.
    assert _value(samples, "dakia_requests_total", route="api-v2") == 1
    counted_before = _value(samples, "dakia_requests_total")
    # That scrape is counted once it is answered, a moment after the client has its body.
    # A kill in that moment would lose the count (the one increment a killed worker may
    # lose), so wait for the heartbeats to report it first: the request counter they
    # carry is raised in the same step, with no switch between, as the metrics.
    _served_by_each(gw, int(counted_before) + 1)

    # A worker killed: the restart is counted, and its counts survive it.
    victim = gw.workers()[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len([w for w in gw.workers()
                            if w["pid"] != victim and w["state"] == "ready"]) == 2, 10,
               "a replacement worker")
    samples = _scrape(gw)
    assert _value(samples, "dakia_worker_restarts_total") == 1
    # Everything counted before the kill, plus the scrape that reported it.
    assert _value(samples, "dakia_requests_total") == counted_before + 1

    # Open client connections: three idle keep-alive clients, then none.
    clients = []
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            sock.sendall(b"GET /api/idle HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            clients.append(sock)
        wait_until(lambda: _value(_scrape(gw), "dakia_client_connections") == 3, 10,
                   "three open client connections")
    finally:
        for sock in clients:
            sock.close()
    wait_until(lambda: _value(_scrape(gw), "dakia_client_connections") == 0, 10,
               "no open client connection")


def test_a_reload_turns_counting_off_and_on(upstreams, gateways):
    gw, _up = _start(upstreams, gateways)
    for _ in range(3):
        assert requests.get(gw.url + "/api/on", timeout=10).status_code == 200

    def reload(version: int) -> None:
        gw.write_config()
        done = gw.cli("reload")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(lambda: {w["config_version"] for w in gw.workers()} == {version}, 10,
                   f"every worker on v{version}")

    gw.config["metrics"] = {"enabled": False}
    reload(2)
    for _ in range(4):
        assert requests.get(gw.url + "/api/off", timeout=10).status_code == 200
    samples = _scrape(gw)
    assert _value(samples, "dakia_requests_total", route="api") == 3   # kept, not counted
    assert _value(samples, "dakia_config_version") == 2
    gw.config["metrics"] = {"enabled": True}
    reload(3)
    assert requests.get(gw.url + "/api/on-again", timeout=10).status_code == 200
    assert _value(_scrape(gw), "dakia_requests_total", route="api") == 4
