"""request_rewrite and response_rewrite through a running gateway: the upstream sees the
rewritten request, the client the rewritten response; filters still match what arrived."""
from __future__ import annotations

import requests

from .harness import node


def _headers_handler(received, sock):
    return (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-powered-by: php\r\n"
            b"server: nginx\r\n\r\nok")


def test_request_rewrite_is_visible_upstream(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "filters": [{"name": "api", "path": {"$starts_with": "/api/"}}],
        "interceptors": [{"name": "request_rewrite", "filter": "api", "config": {
            "strip_prefix": "/api",
            "path_regex": {"pattern": "^/users/(?P<id>\\d+)$", "replacement": "/v2/users/${id}"},
            "method": "POST",
            "set_headers": {"X-Env": "prod", "Host": "backend.internal"},
            "add_headers": {"X-Tag": "gw"},
            "remove_headers": ["Cookie"],
            "set_query": {"version": 2},
            "remove_query": ["debug"]}}]})
    r = requests.get(gw.url + "/api/users/42?debug=1&keep=a%20b",
                     headers={"Cookie": "s=1", "X-Env": "dev", "X-Tag": "client"}, timeout=5)
    assert r.status_code == 200
    seen = up.received[-1]
    assert seen.method == "POST"
    assert seen.target == "/v2/users/42?keep=a%20b&version=2"
    assert seen.header("cookie") is None
    assert seen.header_all("x-env") == ["prod"]
    assert seen.header_all("x-tag") == ["client", "gw"]
    assert seen.header("host") == "backend.internal"
    # X-Forwarded-Host still says what the client asked for.
    assert seen.header("x-forwarded-host") == f"127.0.0.1:{gw.port}"
    requests.get(gw.url + "/other?debug=1", timeout=5)
    assert up.received[-1].target == "/other?debug=1"         # outside the filter: as sent


def test_request_rewrite_dakia_map(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "request_rewrite", "rewrite": {
            "path": "/fixed", "header.x-from": "dakia", "req.header.x-drop": None,
            "us.req.query.lang": "en"}}]})
    requests.get(gw.url + "/anything?lang=fr&x=1", headers={"X-Drop": "1"}, timeout=5)
    seen = up.received[-1]
    assert seen.target == "/fixed?x=1&lang=en"
    assert seen.header("x-from") == "dakia" and seen.header("x-drop") is None


def test_response_rewrite_is_visible_to_the_client(engine, upstreams, gateways):
    up = upstreams(_headers_handler, name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [
            {"name": "response_rewrite", "rewrite": {"header.from-response-rewrite": "ok",
                                                     "res.header.server": None}},
            {"name": "response_rewrite", "config": {
                "status": 299, "remove_headers": ["X-Powered-By"],
                "set_headers": {"Cache-Control": "no-store"}, "add_headers": {"X-A": "1"}}}]})
    r = requests.get(gw.url + "/", timeout=5)
    assert r.status_code == 299 and r.text == "ok"
    assert r.headers["from-response-rewrite"] == "ok"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-a"] == "1"
    assert "x-powered-by" not in r.headers and "server" not in r.headers
