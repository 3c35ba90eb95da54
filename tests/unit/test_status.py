"""`dakia-master status`: the pure parts (tables, durations, node names, the text of a
report). The report read from a real master is tested in tests/integration/test_status.py."""
from __future__ import annotations

import time

import pytest

from dakia_prefork.balance.factory import BALANCERS
from dakia_prefork.http.upstream import Node
from dakia_prefork.status import COUNTING_ALGORITHMS, duration, node_label, render, table


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.9, "0s"), (42, "42s"), (60, "1m00s"), (307, "5m07s"), (3600, "1h00m"),
    (3 * 3600 + 12 * 60 + 59, "3h12m"), (86400 * 2 + 4 * 3600 + 5, "2d04h"), (-3, "0s")])
def test_duration_shows_the_two_largest_units(seconds, text):
    assert duration(seconds) == text


def test_table_pads_columns_aligns_numbers_right_and_text_left():
    lines = table(("NAME", "N", "STATE"), [("a", 5, "ready"), ("longer", 12345, "x")])
    assert lines == ["NAME        N  STATE",
                     "a           5  ready",
                     "longer  12345  x"]


def test_a_column_with_any_text_is_aligned_left_headers_follow_and_empty_says_so():
    assert table(("A", "B"), [(1, "-"), (22, 3)]) == [" A  B", " 1  -", "22  3"]
    assert table(("A", "B"), []) == ["A  B", "(none)"]


@pytest.mark.parametrize("address", [("tcp", "10.0.0.1", 80), ("tcp", "::1", 8080),
                                     ("tcp", "api.internal", 443),
                                     ("unix", "/run/app.sock", 0)])
def test_node_labels_are_those_the_workers_key_shared_state_by(address):
    assert node_label(address) == Node(address).label


def test_counting_algorithms_are_those_whose_balancers_count_in_flight():
    assert COUNTING_ALGORITHMS == {name for name, cls in BALANCERS.items()
                                   if cls.counts_in_flight}


def _report() -> dict:
    return {
        "master": {"pid": 4121, "config_version": 7, "started": 0.0, "uptime": 11_530.0,
                   "ready": True, "vacant_slots": [1], "reloads": {"ok": 5, "failed": 1},
                   "worker_restarts": 2},
        "last_reload": {"ok": True, "at": time.mktime((2026, 12, 3, 9, 1, 12, 0, 0, -1)),
                        "version": 7, "errors": []},
        "workers": [
            {"record": 0, "slot": 0, "generation": 3, "pid": 4125, "state": "ready",
             "config_version": 7, "uptime": 11_000.0, "requests": 10234, "connections": 12,
             "websockets": 2, "last_heartbeat": 0.4},
            {"record": 2, "slot": 1, "generation": 3, "pid": 4190, "state": "booting",
             "config_version": 7, "uptime": 1.0, "requests": 0, "connections": 0,
             "websockets": 0, "last_heartbeat": 1.0}],
        "upstreams": [
            {"gateway": "edge", "upstream": "api", "node": "10.0.0.1:80",
             "algorithm": "least_connection", "health": "healthy", "active": 3,
             "failures": 0, "ejected_for": 0.0},
            {"gateway": "edge", "upstream": "api", "node": "[::1]:8080",
             "algorithm": "least_connection", "health": "unhealthy", "active": 0,
             "failures": 2, "ejected_for": 0.0},
            {"gateway": "edge", "upstream": "web", "node": "unix:/run/web.sock",
             "algorithm": "round_robin", "health": None, "active": None, "failures": 3,
             "ejected_for": 8.25}],
    }


def test_render_shows_the_master_its_workers_and_the_upstream_nodes():
    assert render(_report()) == [
        "master  pid 4121  ready  config v7  uptime 3h12m",
        "reloads  5 ok, 1 failed  worker restarts 2",
        "last reload  2026-12-03 09:01:12  ok: config v7",
        "vacant slots (covered by the other workers): 1",
        "",
        "workers",
        "RECORD  SLOT  GEN   PID  STATE    CONFIG  REQUESTS  CONNS  WS  HEARTBEAT  UPTIME",
        "     0     0    3  4125  ready    v7         10234     12   2  0.4s       3h03m",
        "     2     1    3  4190  booting  v7             0      0   0  1.0s       1s",
        "",
        "upstreams (config v7)",
        "GATEWAY  UPSTREAM  NODE                HEALTH     PASSIVE       IN-FLIGHT",
        "edge     api       10.0.0.1:80         healthy    ok            3",
        "edge     api       [::1]:8080          unhealthy  failures:2    0",
        "edge     web       unix:/run/web.sock  -          ejected:8.2s  -",
    ]


def test_render_says_what_could_not_be_read_and_why_a_reload_was_refused():
    report = {"master": {"pid": 9}, "workers": [],
              "error": "cannot read the control block: no such segment"}
    assert render(report) == ["master  pid 9", "cannot read the control block: no such segment",
                              "", "workers", "RECORD  SLOT  GEN  PID  STATE  CONFIG  REQUESTS  "
                              "CONNS  WS  HEARTBEAT  UPTIME", "(none)"]
    refused = _report()
    refused["last_reload"] = {"ok": False, "at": refused["last_reload"]["at"], "version": 7,
                              "errors": ["workers: expected an integer", "state_dir: full"]}
    assert ("last reload  2026-12-03 09:01:12  refused: workers: expected an integer "
            "(and 1 more)") in render(refused)


def test_render_lists_the_helper_processes_after_the_workers():
    report = _report()
    report["helpers"] = [{"role": "health_checker", "pid": 4130, "uptime": 3600.0},
                         {"role": "admin", "pid": 4131, "uptime": 42.0}]
    lines = render(report)
    at = lines.index("helpers")
    assert lines[at - 1] == "" and lines[at - 2].startswith("     2     1")
    assert lines[at + 1:at + 4] == ["ROLE             PID  UPTIME",
                                    "health_checker  4130  1h00m",
                                    "admin           4131  42s"]
