"""GatewayRouter (routing/router.py), built from configs normalised by config/."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from dakia_prefork.config import validate
from dakia_prefork.routing.router import GatewayRouter


@dataclass
class FakeSubject:
    method: str = "GET"
    path: str = "/"
    scheme: str = "http"
    host: str = "example.com"
    remote_addr: str = "127.0.0.1"
    client_subject: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        return self.params.get(name)


def gateway_router(gateway_yaml: str) -> GatewayRouter:
    """The router of the single gateway in ``gateway_yaml``, after config validation."""
    gateway = yaml.safe_load(gateway_yaml)
    gateway.setdefault("name", "gw")
    gateway.setdefault("bind_addresses", [{"host": "127.0.0.1", "port": 8080}])
    config, _ = validate({"gateways": [gateway]}, base_dir="/")
    return GatewayRouter(config["gateways"][0])


UPSTREAMS = """
upstreams:
  - {name: payment, upstream_nodes: [{address: {host: 127.0.0.1, port: 3000}}]}
  - {name: search, upstream_nodes: [{address: {host: 127.0.0.1, port: 3001}}]}
  - {name: fallback, default: true, upstream_nodes: [{address: {host: 127.0.0.1, port: 3002}}]}
"""


def test_first_matching_router_wins() -> None:
    router = gateway_router(UPSTREAMS + """
routers:
  - {upstream: payment, filter: pay}
  - {upstream: search, filter: pay_or_search}
  - {upstream: default}
filters:
  - {name: pay, path: {$starts_with: /payment}}
  - {name: pay_or_search, path: {$or: [{$starts_with: /payment}, {$starts_with: /search}]}}
""")
    assert router.route(FakeSubject(path="/payment/1")) == "payment"
    assert router.route(FakeSubject(path="/search?q")) == "search"
    assert router.route(FakeSubject(path="/other")) == "fallback"


def test_default_alias_resolves_to_the_upstream_marked_default() -> None:
    router = gateway_router(UPSTREAMS + "routers: [{upstream: default}]\n")
    assert router.route(FakeSubject()) == "fallback"
    assert router.default_upstream == "fallback"


def test_no_router_matched_is_none() -> None:
    router = gateway_router(UPSTREAMS + """
routers: [{upstream: payment, filter: pay}]
filters: [{name: pay, method: POST}]
""")
    assert router.route(FakeSubject(method="POST")) == "payment"
    assert router.route(FakeSubject(method="GET")) is None


@pytest.mark.parametrize("routers", ["", "routers: []\n", "routers:\n"])
def test_no_routers_sends_everything_to_the_default(routers: str) -> None:
    router = gateway_router(UPSTREAMS + routers)
    assert router.route(FakeSubject(path="/anything")) == "fallback"


def test_no_routers_and_no_default_is_none() -> None:
    router = gateway_router(
        "upstreams: [{name: a, upstream_nodes: [{address: {host: h, port: 1}}]}]\n")
    assert router.default_upstream is None
    assert router.route(FakeSubject()) is None


def test_router_without_filter_matches_everything() -> None:
    router = gateway_router(UPSTREAMS + """
routers: [{upstream: search}, {upstream: payment, filter: pay}]
filters: [{name: pay, path: /payment}]
""")
    assert router.route(FakeSubject(path="/payment")) == "search"


def test_hosts_and_filters_are_exposed() -> None:
    router = gateway_router(UPSTREAMS + """
downstreams: [{host: Example.com}, {host: "*.example.net"}]
filters: [{name: internal, remote_addr: {$starts_with: "10."}}]
""")
    assert router.name == "gw"
    assert router.hosts.match("example.com") == "example.com"
    assert router.hosts.match("a.example.net") == "*.example.net"
    assert router.hosts.match("example.org") is None
    assert router.filters["internal"](FakeSubject(remote_addr="10.0.0.1"))
    assert not router.filters["internal"](FakeSubject())


def test_no_downstreams_answers_any_host() -> None:
    router = gateway_router(UPSTREAMS)
    assert router.hosts.match("whatever.test") == "*"


def test_sample_gateway_routes_like_dakia() -> None:
    router = gateway_router(UPSTREAMS.replace("fallback", "default") + """
routers:
  - {upstream: payment, filter: payment_router_filter}
  - {upstream: search, filter: search_router_filter}
  - {upstream: default}
filters:
  - {name: payment_router_filter, ds.req.path: {$starts_with: /payment}}
  - {name: search_router_filter, path: {$starts_with: /search}}
""")
    assert router.route(FakeSubject(path="/payment")) == "payment"
    assert router.route(FakeSubject(path="/search")) == "search"
    assert router.route(FakeSubject(path="/")) == "default"


def _normalised_gateway(**overrides: Any) -> dict[str, Any]:
    gateway: dict[str, Any] = {
        "name": "gw",
        "downstreams": [],
        "upstreams": [{"name": "a", "default": False}],
        "routers": [{"upstream": "a", "filter": None}],
        "filters": [],
    }
    gateway.update(overrides)
    return gateway


def test_unresolved_names_are_refused_not_routed() -> None:
    with pytest.raises(ValueError, match="no filter named 'nope'"):
        GatewayRouter(_normalised_gateway(routers=[{"upstream": "a", "filter": "nope"}]))
    with pytest.raises(ValueError, match="no upstream named 'default'"):
        GatewayRouter(_normalised_gateway(routers=[{"upstream": "default", "filter": None}]))


def test_many_routers_from_a_validated_config_route_in_order() -> None:
    # Enough routers for the index: normalised filter keys (ds.req., header names), the
    # `default` alias, a router without a filter and an unindexable one keep their order.
    router = gateway_router(UPSTREAMS + """
routers:
  - {upstream: payment, filter: pay}
  - {upstream: search, filter: search_get}
  - {upstream: payment, filter: api_host}
  - {upstream: search, filter: regex}
  - {upstream: payment, filter: exact}
  - {upstream: default}
  - {upstream: search, filter: pay}
filters:
  - {name: pay, ds.req.path: {$starts_with: /payment}}
  - {name: search_get, req.path: {$starts_with: /search}, req.method: {$in: [GET, HEAD]}}
  - {name: api_host, ds.req.header.Host: API.Example.com}
  - {name: regex, path: {$matches: "^/s"}}
  - {name: exact, path: /exact}
""")
    assert router.route(FakeSubject(path="/payment/1")) == "payment"
    assert router.route(FakeSubject(path="/search", method="GET")) == "search"
    assert router.route(FakeSubject(path="/search", method="POST")) == "search"   # regex
    assert router.route(FakeSubject(path="/x", host="api.example.com")) == "payment"
    assert router.route(FakeSubject(path="/x", host="API.example.com")) == "fallback"
    assert router.route(FakeSubject(path="/exact")) == "payment"
    assert router.route(FakeSubject(path="/exact/")) == "fallback"
