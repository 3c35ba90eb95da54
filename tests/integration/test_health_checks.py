"""Active health checks: one checker process for the whole gateway, publishing to every
worker, following reloads, respawned when it dies; a node stopped under load."""
from __future__ import annotations

import os
import signal
import time

from .harness import node, wait_until
from .traffic import get, node_state, reload_config, stop_under_load


def test_503_when_health_checks_find_every_node_down(upstreams, gateways):
    sick = [upstreams(lambda req, sock: b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n",
                      name=f"s{i}") for i in range(2)]
    gw = gateways([{"name": "app", "passive_health": {"max_failures": 0},
                    "health_check": {"path": "/healthz", "interval": 0.1,
                                     "unhealthy_threshold": 2},
                    "upstream_nodes": [node(u.port) for u in sick]}])
    wait_until(lambda: get(gw.url + "/").status_code == 503, 10, "503 once both are unhealthy")
    probes = [x for x in sick[0].received if x.target == "/healthz"]
    assert probes and probes[0].header("user-agent") == "dakia-health-check"
    assert "is unhealthy (status 500 (expected 200))" in gw.log_text()


def test_a_node_that_does_not_speak_http_fails_its_checks(engine, upstreams, gateways):
    garbage = upstreams(lambda req, sock: b"garbage\r\n\r\n", name="garbage")
    gw = gateways([{"name": "app", "health_check": {"path": "/hc", "interval": 0.1,
                                                    "unhealthy_threshold": 1},
                    "upstream_nodes": [node(garbage.port)]}], engine=engine)
    label = f"127.0.0.1:{garbage.port}"
    wait_until(lambda: node_state(gw, "app", label).health == "unhealthy", 10, "unhealthy")
    # The checker records the state in shared memory first and logs it just after.
    wait_until(lambda: "is unhealthy (invalid response: illegal status line" in gw.log_text(),
               5, "the log line saying why")


def test_one_health_checker_for_all_workers_and_it_comes_back(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "health_check": {"path": "/hc", "interval": 0.2},
                    "upstream_nodes": [node(up.port)]}], workers=3)
    wait_until(lambda: len([x for x in up.received if x.target == "/hc"]) >= 3, 10,
               "probes")
    start = len([x for x in up.received if x.target == "/hc"])
    time.sleep(1.0)
    probes = len([x for x in up.received if x.target == "/hc"]) - start
    assert 3 <= probes <= 7, probes          # one prober at 5/s, not three
    checker = _checker_pid(gw)
    os.kill(checker, signal.SIGKILL)
    wait_until(lambda: _checker_pid(gw) not in (None, checker), 10, "a new health checker")
    assert "health checker" in gw.log_text() and "respawning" in gw.log_text()


def _checker_pid(gw) -> int | None:
    """The master's one child that is not a worker (the health checker), if any."""
    workers = {w["pid"] for w in gw.workers()}
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == gw.master_pid and fields[0] != "Z":
            children.add(int(entry))
    others = children - workers
    return others.pop() if len(others) == 1 else None


def test_health_checks_follow_reloads(upstreams, gateways):
    up = upstreams(lambda req, sock: (b"HTTP/1.1 503 No\r\ncontent-length: 0\r\n\r\n"
                                      if req.target == "/hc" else
                                      b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
    other = upstreams(name="other")
    spec = {"name": "app", "health_check": {"path": "/hc", "interval": 0.1,
                                            "unhealthy_threshold": 1},
            "upstream_nodes": [node(up.port), node(other.port)]}
    gw = gateways([spec], workers=2)
    label = f"127.0.0.1:{up.port}"
    wait_until(lambda: node_state(gw, "app", label).health == "unhealthy", 10, "unhealthy")
    assert all(get(gw.url + "/").text == "other" for _ in range(6))
    # The check now accepts 503: the node is healthy again after healthy_threshold probes.
    spec["health_check"]["expected_statuses"] = [200, 503]
    reload_config(gw, 2)
    wait_until(lambda: node_state(gw, "app", label).health == "healthy", 10, "healthy")
    assert {get(gw.url + "/").text for _ in range(6)} == {"ok", "other"}
    # No health check any more: its verdict is forgotten and the checker leaves.
    spec["health_check"] = None
    reload_config(gw, 3)
    wait_until(lambda: node_state(gw, "app", label).health == "unknown", 10, "unknown")
    wait_until(lambda: _checker_pid(gw) is None, 10, "the checker to exit")


def test_a_node_stopped_under_load_active_checks(upstreams, gateways):
    ups = [upstreams(name=f"n{i}") for i in range(3)]
    gw = gateways([{"name": "app", "passive_health": {"max_failures": 0},
                    "health_check": {"interval": 0.1, "timeout": 0.5,
                                     "unhealthy_threshold": 2},
                    "upstream_nodes": [node(u.port) for u in ups]}], workers=2)
    label = f"127.0.0.1:{ups[1].port}"
    load, found = stop_under_load(
        gw, ups[1], lambda: node_state(gw, "app", label).health == "unhealthy")
    after = [(when, ok, text) for when, ok, text in load.timeline if when >= found]
    assert after and all(ok for _when, ok, _text in after), after[:5]
    assert load.result.failures == []        # retries covered the time before detection
    assert {text for _w, _ok, text in after} == {"n0", "n2"}




def test_health_checks_speak_tls_to_tls_nodes(tmp_path, gateways):
    from tests.tlsutil import make_pki

    from .tls_upstream import TLSUpstream
    pki = make_pki(str(tmp_path))
    up = TLSUpstream(pki, name="checked", require_client_cert=True)
    try:
        gw = gateways([{"name": "app", "health_check": {"path": "/hc", "interval": 0.1},
                        "upstream_nodes": [{**node(up.port, "localhost"), "tls": True,
                                            "ca_file": pki.ca_file,
                                            "client_cert": pki.client_cert,
                                            "client_key": pki.client_key}]}])
        wait_until(lambda: any(x.target == "/hc" for x in up.received), 10, "a TLS probe")
        assert up.handshake_errors == []
        assert get(gw.url + "/").text == "checked"
    finally:
        up.close()
