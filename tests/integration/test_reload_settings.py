"""Every setting reaches running workers on reload, and the restart-only ones are reported.

Real master, real upstreams, real clients over loopback, real SIGHUP / ``dakia-master
reload``. Each test checks that the worker that answers after the reload is the same
process that answered before it: the settings moved, the workers did not restart.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time

import requests

from dakia_prefork.cli import status_report
from dakia_prefork.master import pidfile

from .harness import node, raw_exchange, read_responses, wait_until
from .traffic import delayed


def _pids(gw) -> list[int]:
    return sorted(w["pid"] for w in gw.workers())


def _reload(gw, version: int, *, by_signal: bool = False) -> str:
    """Write the config, reload (CLI or a bare HUP), wait for every worker to serve it."""
    gw.write_config()
    out = ""
    if by_signal:
        gw.signal(signal.SIGHUP)
    else:
        done = gw.cli("reload")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"serves config v{version}" in done.stdout
        out = done.stdout
    wait_until(lambda: {w["config_version"] for w in gw.workers()} == {version}, 10,
               f"every worker on config v{version}")
    return out


def _post(gw, size: int) -> int:
    return requests.post(gw.url + "/", data=b"x" * size, timeout=10).status_code


# -- limits ---------------------------------------------------------------------------------
def test_hup_lowering_max_body_bytes_gives_413_from_the_same_worker(engine, upstreams,
                                                                    gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  extra={"limits": {"max_body_bytes": 100000}})
    pids = _pids(gw)
    assert _post(gw, 5000) == 200
    gw.config["limits"] = {"max_body_bytes": 1000}
    _reload(gw, 2, by_signal=True)
    assert _post(gw, 5000) == 413            # accepted before the reload
    assert _post(gw, 500) == 200
    assert _pids(gw) == pids
    # And back up: the limit follows the file both ways.
    gw.config["limits"] = {"max_body_bytes": 10000}
    _reload(gw, 3)
    assert _post(gw, 5000) == 200
    assert _pids(gw) == pids


def test_reload_lowering_max_header_bytes_gives_431(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    pids = _pids(gw)
    request = (b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: " + b"a" * 8000
               + b"\r\n\r\n")
    assert raw_exchange(gw.port, request).startswith(b"HTTP/1.1 200 ")
    gw.config["limits"] = {"max_header_bytes": 4096}
    _reload(gw, 2)
    assert raw_exchange(gw.port, request).startswith(b"HTTP/1.1 431 ")
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
    assert _pids(gw) == pids


def test_reload_changes_max_connections_of_the_running_worker(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    pids = _pids(gw)
    first = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    second = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        for sock in (first, second):                                  # 10000 allowed
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert read_responses(sock, 1)[0][0].status_code == 200
        second.close()
        gw.config["limits"] = {"max_connections": 1}
        _reload(gw, 2)
        third = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        try:
            third.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            third.settimeout(1.0)
            try:
                early = third.recv(65536)
            except socket.timeout:
                early = b""
            assert early == b"", "answered beyond max_connections"
            # One connection closes: the waiting one is accepted and answered.
            first.close()
            third.settimeout(5.0)
            assert third.recv(65536).startswith(b"HTTP/1.1 200 ")
        finally:
            third.close()
    finally:
        first.close()
        second.close()
    assert _pids(gw) == pids


# -- upstream settings ----------------------------------------------------------------------
def test_reload_lowering_the_upstream_read_timeout_gives_504(upstreams, gateways):
    up = upstreams(delayed("slow", [1.0]))
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    pids = _pids(gw)
    r = requests.get(gw.url + "/", timeout=10)
    assert (r.status_code, r.text) == (200, "slow")
    gw.config["gateways"][0]["upstreams"][0]["timeouts"] = {"read": 0.3}
    gw.config["gateways"][0]["upstreams"][0]["retries"] = 0
    _reload(gw, 2)
    assert requests.get(gw.url + "/", timeout=10).status_code == 504
    assert _pids(gw) == pids


def test_reload_changes_the_upstream_keepalive_pool_size(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    pids = _pids(gw)
    for _ in range(3):
        assert requests.get(gw.url + "/", timeout=5).status_code == 200
    assert up.connections == 1                  # one pooled upstream connection, reused
    gw.config["upstream_keepalive_pool_size"] = 0
    _reload(gw, 2)
    before = up.connections
    for _ in range(3):
        assert requests.get(gw.url + "/", timeout=5).status_code == 200
    # Nothing is kept any more: every request opens its own upstream connection (the one
    # pooled before the reload may serve the first of them).
    assert up.connections >= before + 2
    assert _pids(gw) == pids


# -- logs -----------------------------------------------------------------------------------
def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _line_for(path: str, target: str) -> str:
    return wait_until(lambda: next((l for l in _lines(path) if target in l), None), 5,
                      f"the access-log line of {target} in {path}")


def test_reload_switches_the_access_log_format_then_its_file(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                  extra={"access_log_format": "combined"})
    pids = _pids(gw)
    first = gw.config["access_log"]
    assert requests.get(gw.url + "/before", timeout=5).status_code == 200
    assert _line_for(first, "/before").startswith('127.0.0.1 - - [')

    gw.config["access_log_format"] = "json"
    _reload(gw, 2)
    assert requests.get(gw.url + "/as-json", timeout=5).status_code == 200
    entry = json.loads(_line_for(first, "/as-json"))
    assert (entry["target"], entry["status"], entry["remote_addr"]) == ("/as-json", 200,
                                                                        "127.0.0.1")

    second = os.path.join(gw.tmp, "access-2.log")
    gw.config["access_log"] = second
    _reload(gw, 3)
    assert requests.get(gw.url + "/moved", timeout=5).status_code == 200
    assert json.loads(_line_for(second, "/moved"))["target"] == "/moved"
    time.sleep(0.5)                              # past a flush: nothing lands in the old file
    assert not any("/moved" in line for line in _lines(first))
    assert _pids(gw) == pids


def test_reload_moves_the_error_log_and_its_level(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                  extra={"log_level": "warning"})
    pids = _pids(gw)
    error_log = os.path.join(gw.tmp, "error.log")
    gw.config.update(error_log=error_log, log_level="info")
    _reload(gw, 2)
    # The master's reload message and the worker's swap message (info) land in the file.
    wait_until(lambda: any("reload: published config v2" in l for l in _lines(error_log)),
               5, "the master's reload line in the new error log")
    wait_until(lambda: any(f"worker {pids[0]} now serves config v2" in l
                           for l in _lines(error_log)), 5,
               "the worker's line in the new error log")
    gw.config["log_level"] = "error"
    _reload(gw, 3)
    time.sleep(0.3)
    assert not any("config v3" in l for l in _lines(error_log))   # info is below error now
    assert _pids(gw) == pids


# -- the master -----------------------------------------------------------------------------
def test_reload_changes_the_worker_count_as_ttin_ttou(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=1)
    [first] = _pids(gw)
    gw.config["workers"] = 2
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    wait_until(lambda: len([w for w in gw.workers() if w["state"] == "ready"]) == 2, 15,
               "a second worker")
    assert first in _pids(gw)                   # grown, not restarted
    assert requests.get(gw.url + "/", timeout=5).status_code == 200


def test_reload_with_a_changed_pid_file_reports_it_and_keeps_the_old_one(upstreams,
                                                                         gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                  extra={"limits": {"max_body_bytes": 100000}})
    pids = _pids(gw)
    old_pid_file = gw.config["pid_file"]
    new_pid_file = os.path.join(gw.tmp, "moved.pid")
    paths = gw.normalised_paths()
    gw.config["pid_file"] = new_pid_file
    gw.config["limits"] = {"max_body_bytes": 1000}      # applied in the same reload
    gw.write_config()
    done = gw.cli("reload")
    assert done.returncode == 0, done.stdout + done.stderr
    line = (f"pid_file: changed in the file but needs a restart (dakia-master upgrade); "
            f"still {old_pid_file}")
    assert f"reloaded: master {gw.master_pid} serves config v2" in done.stdout
    assert line in done.stdout.splitlines()
    assert "state_dir" not in done.stdout            # only what changed is listed
    wait_until(lambda: line in gw.log_text(), 5, "the same line in the master's log")
    assert pidfile.read(old_pid_file) == gw.master_pid
    assert not os.path.exists(new_pid_file)
    # The other change of that reload was applied, by the same worker.
    wait_until(lambda: {w["config_version"] for w in status_report(paths, gw.master_pid)
                        ["workers"]} == {2}, 10, "the worker on v2")
    assert _post(gw, 5000) == 413
    assert sorted(w["pid"] for w in status_report(paths, gw.master_pid)["workers"]) == pids
    # The CLI still finds the master with the edited file, and says the same next time.
    status = gw.cli("status")
    assert status.returncode == 0 and f"pid {gw.master_pid}" in status.stdout, status.stderr
    again = gw.cli("reload")
    assert again.returncode == 0 and line in again.stdout.splitlines(), again.stdout


def test_reload_with_a_changed_state_dir_reports_it(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    pids = _pids(gw)
    old_state_dir = gw.config["state_dir"]
    gw.config["state_dir"] = os.path.join(gw.tmp, "state-2")
    gw.config["access_log_format"] = "json"              # applied in the same reload
    gw.write_config()
    done = gw.cli("reload")
    assert done.returncode == 0, done.stdout + done.stderr
    line = (f"state_dir: changed in the file but needs a restart (dakia-master upgrade); "
            f"still {old_state_dir}")
    assert line in done.stdout.splitlines()
    # The master still publishes where it runs; the CLI finds it and its workers.
    assert os.path.exists(os.path.join(old_state_dir, "config", "v2.json"))
    assert not os.path.exists(os.path.join(gw.config["state_dir"], "config"))
    status = gw.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["master"]["pid"] == gw.master_pid
    wait_until(lambda: [w["config_version"] for w in json.loads(gw.cli("status", "--json")
                                                                .stdout)["workers"]] == [2],
               10, "the worker on v2")
    assert sorted(w["pid"] for w in report["workers"]) == pids
    assert requests.get(gw.url + "/json-now", timeout=5).status_code == 200
    assert json.loads(_line_for(gw.config["access_log"], "/json-now"))["status"] == 200


def test_upgrade_applies_a_changed_pid_file(upstreams, gateways):
    """What the restart-only notice advises works: the new master writes the new pid file."""
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    old_master = gw.master_pid
    old_pid_file = gw.config["pid_file"]
    gw.config["pid_file"] = os.path.join(gw.tmp, "moved.pid")
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    result = gw.cli("upgrade", timeout=90)
    new_master = pidfile.read(gw.config["pid_file"])
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert new_master is not None and new_master != old_master
        assert gw.process is not None and gw.process.wait(15) == 0
        assert not os.path.exists(old_pid_file)
        assert not os.path.exists(old_pid_file + ".oldbin")
        assert requests.get(gw.url + "/", timeout=5).status_code == 200
        done = gw.cli("reload")
        assert done.returncode == 0 and "pid_file" not in done.stdout, done.stdout
    finally:
        stop = gw.cli("stop")
    assert stop.returncode == 0, stop.stderr
