"""Interceptors through a running gateway: phases, scoping, replies, replaced bodies, reload.

Real master and workers, real upstreams (harness.py); what is asserted is what a client and
the upstream see.
"""
from __future__ import annotations

import socket
import uuid

import requests

from .harness import free_port, node, read_responses, wait_until


def _chunked_handler(received, sock):
    return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-up: 1\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")


def test_short_circuit_scoped_by_filter(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "filters": [{"name": "maintenance", "path": {"$starts_with": "/down"}}],
        "interceptors": [{"name": "short_circuit", "filter": "maintenance",
                          "response": {"status": 503, "body": "back soon",
                                       "header.retry-after": 120}}]})
    r = requests.get(gw.url + "/down/x", timeout=5)
    assert (r.status_code, r.text, r.headers["retry-after"]) == (503, "back soon", "120")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert up.received == []                          # the upstream never saw it
    r = requests.get(gw.url + "/up", timeout=5)
    assert (r.status_code, r.text) == (200, "app")
    assert [seen.target for seen in up.received] == ["/up"]


def test_request_id_and_server_version_on_every_response(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "request_id", "config": {"keep_incoming": True}},
                         {"name": "server_version", "config": {"server": "edge/7"}}]})
    r = requests.get(gw.url + "/a", timeout=5)
    sent_up = up.received[-1].header("x-request-id")
    assert r.headers["x-request-id"] == sent_up and uuid.UUID(sent_up).version == 4
    assert r.headers["server"] == "edge/7"
    r = requests.get(gw.url + "/b", headers={"X-Request-Id": "trace-42"}, timeout=5)
    assert r.headers["x-request-id"] == "trace-42" == up.received[-1].header("x-request-id")
    r = requests.get(gw.url + "/c", headers={"X-Request-Id": "bad id\twith tab"}, timeout=5)
    assert r.headers["x-request-id"] != "bad id\twith tab"


def test_gateway_errors_go_through_pre_downstream_response(engine, upstreams, gateways):
    dead = free_port()
    gw = gateways([{"name": "app", "upstream_nodes": [node(dead)]}], engine=engine, gateway={
        "interceptors": [{"name": "request_id"}, {"name": "server_version"}]})
    r = requests.get(gw.url + "/x", timeout=5)
    assert r.status_code == 502
    assert uuid.UUID(r.headers["x-request-id"]) and r.headers["server"].startswith("dakia")


def test_replaced_body_with_every_upstream_framing(engine, upstreams, gateways):
    """A replaced body goes out with its own Content-Length, whatever the upstream sent,
    and the upstream connection stays usable for the next request."""
    up = upstreams(_chunked_handler, name="chunked")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "filters": [{"name": "replace", "path": {"$starts_with": "/replace"}}],
        "interceptors": [{"name": "response_rewrite", "filter": "replace",
                          "config": {"body": "a new body", "status": 201,
                                     "set_headers": {"content-type": "text/x-new"}}}]})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        for path in ("/replace", "/plain", "/replace"):
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n\r\n")
            [(response, body)] = read_responses(s, 1)
            headers = dict(response.headers)
            if path == "/replace":
                assert response.status_code == 201 and body == b"a new body"
                assert headers[b"content-length"] == b"10"
                assert headers[b"content-type"] == b"text/x-new" and headers[b"x-up"] == b"1"
            else:
                assert response.status_code == 200 and body == b"hello world"
    assert up.connections == 1                         # drained and reused, not closed
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"HEAD /replace HTTP/1.1\r\nhost: x\r\n\r\n")
        [(response, body)] = read_responses(s, 1, methods=[b"HEAD"])
        assert body == b"" and dict(response.headers)[b"content-length"] == b"10"


def test_large_replaced_body_closes_the_upstream_connection(engine, upstreams, gateways):
    big = b"x" * 300_000

    def handler(received, sock):
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big)

    up = upstreams(handler, name="big")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "response_rewrite", "config": {"body": "small"}}]})
    for _ in range(2):
        r = requests.get(gw.url + "/", timeout=5)
        assert r.text == "small"
    assert up.connections == 2


def test_reload_adds_reorders_and_removes_interceptors_without_restart(upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    pids = {w["pid"] for w in gw.workers()}
    assert requests.get(gw.url + "/", timeout=5).status_code == 200

    def reload_to(interceptors, version):
        gw.config["gateways"][0]["interceptors"] = interceptors
        gw.write_config()
        done = gw.cli("reload")
        assert done.returncode == 0, done.stderr
        wait_until(lambda: all(w["config_version"] == version for w in gw.workers()), 10,
                   f"workers on config v{version}")

    reload_to([{"name": "short_circuit", "response": {"status": 503, "body": "off"}},
               {"name": "server_version", "config": {"server": "v2"}}], 2)
    r = requests.get(gw.url + "/", timeout=5)
    assert (r.status_code, r.text, r.headers["server"]) == (503, "off", "v2")
    reload_to([{"name": "server_version", "config": {"server": "v3"}}], 3)
    r = requests.get(gw.url + "/", timeout=5)
    assert (r.status_code, r.text, r.headers["server"]) == (200, "app", "v3")
    reload_to([], 4)
    r = requests.get(gw.url + "/", timeout=5)
    assert r.status_code == 200 and "server" not in r.headers
    assert {w["pid"] for w in gw.workers()} == pids        # nothing restarted


def test_a_controller_without_an_admin_section_is_refused(upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False, gateway={
        "interceptors": [{"name": "controller", "config": {}}]})
    gw.write_config()
    check = gw.cli("check")
    assert check.returncode == 1
    assert "gateways[0].interceptors[0].name: the controller serves the admin API on this " \
           "gateway and needs the admin section" in check.stderr
    start = gw.cli("start")
    assert start.returncode == 1 and "the configuration is invalid" in start.stderr
