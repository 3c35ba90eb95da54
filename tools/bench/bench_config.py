"""The benchmark's scenarios and the gateway configs they run (pure: dicts, no I/O).

Scenarios, measured once per parser engine:

- ``floor``: the reference floor of the engine (not a gateway; no config here);
- ``bare``: one gateway, one route to the upstream, no interceptors;
- ``chain``: the same with the default chain ``request_id``, ``server_version`` and a
  ``rate_limiter`` (policy local, keyed by client address) whose bucket never empties, so
  every request pays the check and its headers and none is refused;
- ``routes1000``: 1,000 downstream hosts and 1,000 routers, router *i* with its own filter
  ``{host: h<i>.bench.test, path: {$starts_with: /r<i>/}}``; the request matches only the
  last one (``Host: h999.bench.test``, ``GET /r999/``), the worst case of first-match order.

Every gateway: 1 worker, ``http_parser`` set explicitly, access log off, its own pid file,
state dir and error log under the run's temp dir.
"""
from __future__ import annotations

import os
from typing import Any

from bench_load import Request

SCENARIOS = ("floor", "bare", "chain", "routes1000")
GATEWAY_SCENARIOS = SCENARIOS[1:]
ENGINES = ("h11", "httptools")
ROUTES = 1000

# A bucket that never empties: refilled to full every second, far above any request rate.
NEVER_EMPTY = {"capacity": 1_000_000_000, "refill_rate": 1_000_000_000,
               "refill_interval": 1000}
CHAIN: tuple[dict[str, Any], ...] = (
    {"name": "request_id"},
    {"name": "server_version"},
    {"name": "rate_limiter", "config": {**NEVER_EMPTY, "key": "ip", "policy": "local"}},
)

Config = dict[str, Any]


def route_host(index: int) -> str:
    return f"h{index}.bench.test"


def route_prefix(index: int) -> str:
    return f"/r{index}/"


def scenario_request(scenario: str, routes: int = ROUTES) -> Request:
    """What the load sends to ``scenario``: the last route of routes1000, else ``GET /``."""
    if scenario == "routes1000":
        return Request(path=route_prefix(routes - 1), host=route_host(routes - 1))
    return Request()


def upstreams(upstream_port: int) -> list[Config]:
    return [{"name": "up", "default": True, "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": upstream_port}}]}]


def bare_gateway(port: int, upstream_port: int) -> Config:
    return {
        "name": "bench",
        "bind_addresses": [{"host": "127.0.0.1", "port": port}],
        "downstreams": [{"host": "localhost"}, {"host": "127.0.0.1"}],
        "upstreams": upstreams(upstream_port),
        "routers": [{"upstream": "up"}],
    }


def chain_gateway(port: int, upstream_port: int) -> Config:
    return {**bare_gateway(port, upstream_port),
            "interceptors": [dict(entry) for entry in CHAIN]}


def routes_gateway(port: int, upstream_port: int, routes: int = ROUTES) -> Config:
    return {
        "name": "bench",
        "bind_addresses": [{"host": "127.0.0.1", "port": port}],
        "downstreams": [{"host": route_host(i)} for i in range(routes)],
        "upstreams": upstreams(upstream_port),
        "routers": [{"upstream": "up", "filter": f"r{i}"} for i in range(routes)],
        "filters": [{"name": f"r{i}", "host": route_host(i),
                     "path": {"$starts_with": route_prefix(i)}} for i in range(routes)],
    }


def gateway_section(scenario: str, port: int, upstream_port: int,
                    routes: int = ROUTES) -> Config:
    if scenario == "bare":
        return bare_gateway(port, upstream_port)
    if scenario == "chain":
        return chain_gateway(port, upstream_port)
    if scenario == "routes1000":
        return routes_gateway(port, upstream_port, routes)
    raise ValueError(f"no gateway for scenario {scenario!r}")


def gateway_config(scenario: str, engine: str, port: int, upstream_port: int, tmp: str,
                   routes: int = ROUTES, metrics: bool | None = None) -> Config:
    """The whole config file of one gateway: ``scenario`` on ``engine``, files under ``tmp``.
    ``metrics`` sets ``metrics.enabled``; None leaves the key out (the gateway's default,
    and a config an older gateway, without the setting, still reads)."""
    config = config_file(tmp, f"{scenario}-{engine}", engine,
                         gateway_section(scenario, port, upstream_port, routes))
    if metrics is not None:
        config["metrics"] = {"enabled": metrics}
    return config


def config_file(tmp: str, name: str, engine: str, gateway: Config) -> Config:
    """A one-worker config for ``gateway`` on ``engine``, access log off, its pid file,
    state and error log under ``tmp`` named after ``name``."""
    return {
        "workers": 1,
        "http_parser": engine,
        "pid_file": os.path.join(tmp, f"{name}.pid"),
        "state_dir": os.path.join(tmp, f"state-{name}"),
        "access_log": "off",
        "error_log": os.path.join(tmp, f"error-{name}.log"),
        "gateways": [gateway],
    }
