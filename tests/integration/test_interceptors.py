"""Interceptors through a running gateway: phases, scoping, replies, replaced bodies, reload.

Real master and workers, real upstreams (harness.py); what is asserted is what a client and
the upstream see.
"""
from __future__ import annotations

import uuid

import requests

from .harness import free_port, node, wait_until


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


def test_start_refuses_unimplemented_interceptors(upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False, gateway={
        "interceptors": [{"name": "jwt_auth", "config": {}}]})
    gw.write_config()
    check = gw.cli("check")
    assert check.returncode == 0
    assert "warning: gateways[0].interceptors[0].name: interceptor 'jwt_auth' is not " \
           "implemented" in check.stderr
    start = gw.cli("start")
    assert start.returncode == 1 and "cannot run in this version" in start.stderr
