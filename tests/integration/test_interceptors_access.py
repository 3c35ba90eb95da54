"""cors and ip_restriction through a running gateway."""
from __future__ import annotations

import socket

import requests

from .harness import free_port, node, read_responses

ORIGIN = "https://app.example"


def test_cors_preflight_and_simple_requests(engine, upstreams, gateways):
    up = upstreams(name="app")
    key = "cors-test-key-0123456789"
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [
            {"name": "cors", "config": {"allow_origins": [ORIGIN], "allow_methods": ["GET", "PUT"],
                                        "allow_headers": ["X-API-Key", "Content-Type"],
                                        "expose_headers": ["X-Total"], "max_age": 600,
                                        "allow_credentials": True}},
            # After cors: a preflight carries no credentials and must not need them.
            {"name": "key_auth", "config": {"keys": [{"name": "web", "key": key}]}}]})
    r = requests.options(gw.url + "/items", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "x-api-key, content-type"}, timeout=5)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-methods"] == "GET, PUT"
    assert r.headers["access-control-allow-headers"] == "X-API-Key, Content-Type"
    assert r.headers["access-control-max-age"] == "600"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "content-length" not in r.headers
    for origin, method in (("https://evil.example", "PUT"), (ORIGIN, "DELETE")):
        r = requests.options(gw.url + "/items", headers={
            "Origin": origin, "Access-Control-Request-Method": method}, timeout=5)
        assert r.status_code == 403
    assert up.received == []                     # preflights never reach the upstream
    r = requests.get(gw.url + "/items", headers={"Origin": ORIGIN, "X-API-Key": key},
                     timeout=5)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-expose-headers"] == "X-Total"
    assert r.headers["vary"] == "Origin"
    # The 401 of a later interceptor carries CORS headers too, so the page can read it.
    r = requests.get(gw.url + "/items", headers={"Origin": ORIGIN}, timeout=5)
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == ORIGIN
    r = requests.get(gw.url + "/items", headers={"Origin": "https://evil.example",
                                                 "X-API-Key": key}, timeout=5)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_ip_restriction_ipv4(engine, upstreams, gateways):
    up = upstreams(name="app")
    spec = [{"name": "app", "upstream_nodes": [node(up.port)]}]
    allowed = gateways(spec, engine=engine, gateway={
        "interceptors": [{"name": "ip_restriction", "config": {"allow": ["127.0.0.0/8"]}}]})
    assert requests.get(allowed.url + "/", timeout=5).status_code == 200
    outside = gateways(spec, engine=engine, gateway={
        "interceptors": [{"name": "ip_restriction", "config": {"allow": ["10.0.0.0/8"]}}]})
    r = requests.get(outside.url + "/", timeout=5)
    assert r.status_code == 403 and r.text == "403 Forbidden\n"
    denied = gateways(spec, engine=engine, gateway={
        "interceptors": [{"name": "ip_restriction", "config": {"allow": ["127.0.0.0/8"],
                                                               "deny": ["127.0.0.1"]}}]})
    assert requests.get(denied.url + "/", timeout=5).status_code == 403
    # X-Forwarded-For is the client's word, not its address.
    r = requests.get(outside.url + "/", headers={"X-Forwarded-For": "10.0.0.1"}, timeout=5)
    assert r.status_code == 403
    assert len(up.received) == 1


def test_ip_restriction_ipv6(upstreams, gateways):
    up = upstreams(name="app")
    v6_port = free_port("::1")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "bind_addresses": [{"host": "127.0.0.1", "port": free_port()},
                           {"host": "::1", "port": v6_port}],
        "interceptors": [{"name": "ip_restriction", "config": {"allow": ["::1/128"]}}]})
    assert requests.get(gw.url + "/", timeout=5).status_code == 403          # over IPv4
    with socket.create_connection(("::1", v6_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        [(response, body)] = read_responses(s, 1)
    assert response.status_code == 200 and body == b"app"
