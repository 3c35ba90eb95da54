"""Virtual hosts and routing through the running gateway."""
from __future__ import annotations

import pytest
import requests

from .harness import free_port, node, raw_exchange


@pytest.fixture
def vhost_gateway(engine, upstreams, gateways):
    exact, wild, deep, regex, ip = (upstreams(name=n) for n in
                                    ("exact", "wild", "deep", "regex", "ip"))
    gw = gateways(
        [{"name": "exact", "upstream_nodes": [node(exact.port)]},
         {"name": "wild", "upstream_nodes": [node(wild.port)]},
         {"name": "deep", "upstream_nodes": [node(deep.port)]},
         {"name": "regex", "upstream_nodes": [node(regex.port)]},
         {"name": "ip", "upstream_nodes": [node(ip.port)]}],
        engine=engine,
        gateway={
            "downstreams": [{"host": "example.com"}, {"host": "*.example.com"},
                            {"host": "*.api.example.com"}, {"host": "~^api[0-9]+\\.test$"},
                            {"host": "127.0.0.1"}, {"host": "::1"}],
            "routers": [
                {"upstream": "exact", "filter": "is_exact"},
                {"upstream": "deep", "filter": "is_deep"},
                {"upstream": "wild", "filter": "is_wild"},
                {"upstream": "regex", "filter": "is_regex"},
                {"upstream": "ip"},
            ],
            "filters": [
                {"name": "is_exact", "host": "example.com"},
                {"name": "is_deep", "host": {"$ends_with": ".api.example.com"}},
                {"name": "is_wild", "host": {"$ends_with": ".example.com"}},
                {"name": "is_regex", "host": {"$matches": "^api[0-9]+\\.test$"}},
            ],
        })
    return gw


@pytest.mark.parametrize("host,expected", [
    ("example.com", "exact"),
    ("EXAMPLE.com:8080", "exact"),
    ("www.example.com", "wild"),
    ("a.b.example.com", "wild"),
    ("v1.api.example.com", "deep"),
    ("api42.test", "regex"),
    ("127.0.0.1", "ip"),
    ("[::1]:80", "ip"),
])
def test_host_matching(vhost_gateway, host, expected):
    r = requests.get(vhost_gateway.url + "/", headers={"Host": host}, timeout=5)
    assert r.status_code == 200, (host, r.text)
    assert r.text == expected


@pytest.mark.parametrize("host", ["example.org", "api.test", "xapi1.test", "api1.test.evil",
                                  "10.0.0.1", "[::2]"])
def test_unmatched_hosts_are_404(vhost_gateway, host):
    r = requests.get(vhost_gateway.url + "/", headers={"Host": host}, timeout=5)
    assert r.status_code == 404


def test_http10_without_host_matches_only_a_catch_all(vhost_gateway):
    data = raw_exchange(vhost_gateway.port, b"GET / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 404 ")


def test_ipv6_listener(engine, upstreams, gateways):
    up = upstreams(name="six")
    port = free_port("::1")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"bind_addresses": [{"host": "::1", "port": port}]})
    r = requests.get(f"http://[::1]:{port}/", timeout=5)
    assert r.status_code == 200 and r.text == "six"
    assert up.received[-1].header("x-forwarded-for") == "::1"
    assert gw.workers()
