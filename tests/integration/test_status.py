"""`dakia-master status` and `status --json` against a real master: the master's counters,
every worker, and every upstream node's health and requests in flight."""
from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

import requests

from .harness import Gateway, free_port, node, wait_until


def section(text: str, title: str) -> list[list[str]]:
    """The rows of the table under the line ``title`` (up to the next blank line), each
    split into its cells; the header row first."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    header, *body = rows
    assert all(len(row) == len(header) for row in body), rows
    return [dict(zip(header, row)) for row in body]


def status_json(gw: Gateway) -> dict[str, Any]:
    result = gw.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_shows_the_master_every_worker_and_every_upstream_node(upstreams, gateways):
    release = threading.Event()

    def app(request: Any, sock: Any) -> bytes:
        if request.target == "/hold":
            release.wait(20)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\napp"
    up = upstreams(app, name="app")
    # Nothing listens on these. Two nodes: passive ejection spares an upstream's only node.
    dead_ports = [free_port(), free_port()]
    gw: Gateway = gateways(
        [{"name": "app", "health_check": {"path": "/hc", "interval": 0.1},
          "traffic_distribution_policy": {"node_selection_algorithm": "least_connection"},
          "upstream_nodes": [node(up.port)]},
         {"name": "down", "passive_health": {"max_failures": 1, "eject_seconds": 60},
          "upstream_nodes": [node(port) for port in dead_ports]}],
        workers=2,
        gateway={"routers": [{"upstream": "down", "filter": "down"}, {"upstream": "app"}],
                 "filters": [{"name": "down", "path": {"$starts_with": "/down"}}]})
    # One reload accepted, one refused (HUP sent directly: the CLI refuses a bad file itself).
    gw.config["graceful_timeout"] = 11
    assert gw.cli("reload").returncode == 0
    good = dict(gw.config)
    gw.config = {**good, "workers": "many"}
    gw.write_config()
    gw.signal(signal.SIGHUP)
    wait_until(lambda: gw.status()["master"]["reloads"]["failed"] == 1, 30,
               "the refused reload")
    gw.config = good
    gw.write_config()
    # A worker killed: one restart, and its replacement in the same slot.
    victim = next(w for w in gw.workers() if w["slot"] == 0)["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len([w for w in gw.workers() if w["state"] == "ready"
                            and w["pid"] != victim]) == 2, 10, "the replacement")
    # The request to /down tries both dead nodes (retries), each ejected by its first
    # failure; the app node is healthy and holds one request in flight.
    assert requests.get(gw.url + "/down", timeout=10).status_code == 502
    # Requests served reach the control block with the next heartbeat (every second).
    wait_until(lambda: sum(w["requests"] for w in gw.workers()) >= 1, 5, "the count")
    wait_until(lambda: [u["health"] for u in status_json(gw)["upstreams"]
                        if u["upstream"] == "app"] == ["healthy"], 10, "a healthy app node")
    held = threading.Thread(target=lambda: requests.get(gw.url + "/hold", timeout=20))
    held.start()
    try:
        wait_until(lambda: any(r.target == "/hold" for r in up.received), 10,
                   "the held request upstream")
        report = status_json(gw)
        text = gw.cli("status")
    finally:
        release.set()
        held.join(20)

    assert report["running"] is True
    master = report["master"]
    assert master["pid"] == gw.master_pid and master["ready"] is True
    assert master["config_version"] == 2
    assert master["reloads"] == {"ok": 1, "failed": 1}
    assert master["worker_restarts"] == 1
    assert report["last_reload"]["ok"] is False and report["last_reload"]["version"] == 2
    workers = report["workers"]
    assert sorted(w["slot"] for w in workers) == [0, 1] and victim not in {w["pid"] for w in
                                                                            workers}
    for w in workers:
        assert w["state"] == "ready" and w["config_version"] == 2
        assert isinstance(w["connections"], int) and isinstance(w["record"], int)
        assert 0 <= w["last_heartbeat"] < 3
    assert sum(w["requests"] for w in workers) >= 1
    app_row, *down_rows = report["upstreams"]
    assert app_row == {"gateway": "test", "upstream": "app", "node": f"127.0.0.1:{up.port}",
                       "algorithm": "least_connection", "health": "healthy", "active": 1,
                       "failures": 0, "ejected_for": 0.0, "latency_ms": None}
    # The health checker is listed with the helpers, by a pid that is running.
    [checker] = report["helpers"]
    assert checker["role"] == "health_checker" and checker["uptime"] >= 0
    os.kill(checker["pid"], 0)
    # round_robin does not count requests in flight: nothing to show rather than a 0.
    assert [(row["upstream"], row["node"], row["algorithm"], row["health"], row["active"])
            for row in down_rows] == [("down", f"127.0.0.1:{port}", "round_robin", None, None)
                                      for port in dead_ports]
    for row in down_rows:
        assert row["failures"] == 1 and 50 < row["ejected_for"] <= 60, row

    # The text: the same facts, in tables.
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.splitlines()[0].startswith(f"master  pid {gw.master_pid}  ready  config v2  ")
    assert "reloads  1 ok, 1 failed  worker restarts 1" in out
    assert "last reload" in out and "refused: workers" in out
    rows = as_dicts(section(out, "workers"))
    assert sorted((r["SLOT"], r["PID"], r["STATE"], r["CONFIG"]) for r in rows) == sorted(
        (str(w["slot"]), str(w["pid"]), "ready", "v2") for w in workers)
    assert [(h["ROLE"], h["PID"]) for h in as_dicts(section(out, "helpers"))] == [
        ("health_checker", str(checker["pid"]))]
    nodes = as_dicts(section(out, "upstreams (config v2)"))
    assert [(n["UPSTREAM"], n["NODE"], n["HEALTH"], n["IN-FLIGHT"]) for n in nodes] == [
        ("app", f"127.0.0.1:{up.port}", "healthy", "1"),
        *(("down", f"127.0.0.1:{port}", "-", "-") for port in dead_ports)]
    assert [n["PASSIVE"][:8] for n in nodes] == ["ok", "ejected:", "ejected:"]


def test_status_of_a_stopped_gateway_says_so(gateways):
    gw: Gateway = gateways([{"name": "app", "upstream_nodes": [node(1)]}], start=False)
    gw.write_config()
    text = gw.cli("status")
    assert text.returncode == 3 and "not running" in text.stdout
    data = gw.cli("status", "--json")
    assert data.returncode == 3 and json.loads(data.stdout) == {"running": False}
