"""The master process: start, pid file, status, signals, respawn, shared memory, the CLI."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import posix_ipc
import requests
import yaml

from dakia_prefork.shm.segment import state_tag

from .harness import ROOT, free_port, node, wait_until


def _segments(state_dir: str) -> list[str]:
    prefix = f"dakia-{state_tag(state_dir)}-"
    return sorted(e for e in os.listdir("/dev/shm") if e.startswith(prefix))


def test_start_writes_pid_file_and_status_reports_workers(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    with open(gw.config["pid_file"]) as f:
        assert int(f.read()) == gw.master_pid
    result = gw.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["running"] is True and report["master"]["pid"] == gw.master_pid
    assert sorted(w["slot"] for w in report["workers"]) == [0, 1]
    assert all(w["state"] == "ready" and w["config_version"] == 1 for w in report["workers"])
    text = gw.cli("status")
    assert text.returncode == 0 and f"pid {gw.master_pid}" in text.stdout


def test_stop_with_cli_removes_pid_file_and_segments(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    state_dir = gw.config["state_dir"]
    roles = sorted(name.rsplit("-", 1)[1] for name in _segments(state_dir))
    assert roles == ["buckets", "control", "counters", "metrics", "nodes"]
    result = gw.cli("stop")
    assert result.returncode == 0, result.stderr
    assert gw.process.wait(10) == 0
    assert not os.path.exists(gw.config["pid_file"])
    assert _segments(state_dir) == []
    status = gw.cli("status")
    assert status.returncode == 3 and "not running" in status.stdout


def test_quit_finishes_requests_in_flight(upstreams, gateways):
    def slow(request, sock):
        time.sleep(1.0)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
    up = upstreams(slow)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    result = {}

    def client():
        result["response"] = requests.get(gw.url + "/", timeout=10)
    thread = threading.Thread(target=client)
    thread.start()
    wait_until(lambda: up.received, 5, "the request to reach the upstream")
    gw.signal(signal.SIGQUIT)
    thread.join(10)
    assert result["response"].status_code == 200 and result["response"].text == "done"
    assert gw.process.wait(10) == 0
    assert _segments(gw.config["state_dir"]) == []


def test_term_stops_fast(upstreams, gateways):
    def hang(request, sock):
        time.sleep(30)
        return None
    up = upstreams(hang)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    threading.Thread(target=lambda: _ignore(requests.get, gw.url + "/", timeout=30),
                     daemon=True).start()
    wait_until(lambda: up.received, 5, "the request to reach the upstream")
    started = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.process.wait(10) == 0
    assert time.monotonic() - started < 6


def _ignore(func, *args, **kwargs):
    try:
        func(*args, **kwargs)
    except requests.RequestException:
        pass


def test_dead_worker_is_replaced_and_queue_survives(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    [worker] = gw.workers()
    os.kill(worker["pid"], signal.SIGKILL)
    # A connection made while the slot is empty waits in the master's socket queue.
    response = requests.get(gw.url + "/", timeout=10)
    assert response.status_code == 200
    [replacement] = wait_until(lambda: [w for w in gw.workers()
                                        if w["pid"] != worker["pid"] and w["state"] == "ready"],
                               5, "a replacement worker")
    assert replacement["slot"] == 0


def test_stale_segments_of_a_dead_master_are_swept(upstreams, gateways, tmp_path):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False)
    state_dir = gw.config["state_dir"]
    os.makedirs(state_dir)
    # A dead pid: a child that has exited and been reaped.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = f"/dakia-{state_tag(state_dir)}-{child.pid}-control"
    posix_ipc.SharedMemory(stale, posix_ipc.O_CREX, size=4096).close_fd()
    try:
        gw.start()
        assert stale[1:] not in _segments(state_dir)
    finally:
        try:
            posix_ipc.unlink_shared_memory(stale)
        except posix_ipc.ExistentialError:
            pass


def test_second_start_refused_while_running(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}])
    result = gw.cli("start", timeout=20)
    assert result.returncode == 1
    assert "already running" in result.stderr


def test_start_refuses_invalid_config(gateways):
    gw = gateways([{"name": "app", "upstream_nodes": [node(1)]}], start=False)
    gw.config["gateways"][0]["routers"] = [{"upstream": "nope"}]
    gw.write_config()
    result = gw.cli("start", timeout=20)
    assert result.returncode == 1
    assert "gateways[0].routers[0].upstream" in result.stderr
    check = gw.cli("check")
    assert check.returncode == 1 and "gateways[0].routers[0].upstream" in check.stderr


def test_start_refuses_a_port_in_use(gateways):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        gw = gateways([{"name": "app", "upstream_nodes": [node(1)]}], start=False)
        gw.config["gateways"][0]["bind_addresses"] = [{"host": "127.0.0.1", "port": port}]
        gw.write_config()
        result = gw.cli("start", timeout=20)
    assert result.returncode == 1
    assert "address already in use" in result.stderr


def test_daemon_mode(upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False)
    gw.config["error_log"] = os.path.join(gw.tmp, "error.log")   # a daemon has no stderr
    gw.write_config()
    result = gw.cli("start", "--daemon", timeout=30)
    assert result.returncode == 0, result.stderr
    try:
        wait_until(lambda: len(gw.workers()) == 1, 10, "the daemon's worker")
        assert requests.get(gw.url + "/", timeout=5).status_code == 200
    finally:
        stop = gw.cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert not os.path.exists(gw.config["pid_file"])


def test_version_and_check_commands(tmp_path):
    version = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "version"],
                             capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert version.returncode == 0 and version.stdout.startswith("dakia-prefork ")
    # The shipped config, with the token file `make check` writes beside it.
    shipped = tmp_path / "dakia.yaml"
    with open(os.path.join(ROOT, "etc", "dakia", "dakia.yaml"), "rb") as f:
        shipped.write_bytes(f.read())
    (tmp_path / "admin.token").write_text("t" * 64 + "\n")
    check = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c",
                            str(shipped)], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    assert "configuration is valid" in check.stdout


def test_check_prints_schema_and_semantic_errors_together(tmp_path):
    """The README's example output of `check`, from the file it describes."""
    config = {"gateways": [{
        "name": "main",
        "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
        "upstreams": [{"name": "app", "upstream_nodes": [
            {"address": {"host": "127.0.0.1", "port": 70000}}]}],
        "filters": [{"name": "payment", "path": {"$starts_with": "/pay"}}],
        "routers": [{"upstream": "app", "filter": "payment"},
                    {"upstream": "app", "filter": "paymnet"}],
    }]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c",
                            str(path)], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "gateways[0].routers[1].filter: no filter named 'paymnet'",
        "gateways[0].upstreams[0].upstream_nodes[0].address.port: "
        "70000 is greater than the maximum of 65535",
        f"{path}: configuration is invalid"]


def _get_or_none(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.ConnectionError:
        return None


def test_default_config_answers_without_any_upstream(tmp_path):
    """The shipped etc/dakia/dakia.yaml: a page of its own, and 502 for /api/ with none."""
    with open(os.path.join(ROOT, "etc", "dakia", "dakia.yaml")) as f:
        config = yaml.safe_load(f)
    port = free_port()
    config["gateways"][0]["bind_addresses"] = [{"host": "127.0.0.1", "port": port}]
    config["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["address"]["port"] = free_port()
    config["pid_file"] = str(tmp_path / "dakia.pid")
    config["state_dir"] = str(tmp_path / "state")
    admin_port = free_port()
    assert config["admin"] == {"listen": "127.0.0.1:9901", "token_file": "admin.token"}
    config["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    token = "a-token-for-the-sample-config-test"
    (tmp_path / "admin.token").write_text(token + "\n")
    path = tmp_path / "dakia.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "dakia_prefork.cli", "start", "-c",
                                str(path)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        def page():
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            except requests.ConnectionError:
                return None
        response = wait_until(page, 20, "the default page")
        assert response.status_code == 200
        assert "dakia-prefork is running" in response.text
        assert response.headers["server"].startswith("dakia-prefork/")
        assert len(response.headers["x-request-id"]) == 36
        api = requests.get(f"http://127.0.0.1:{port}/api/users", timeout=5)
        assert api.status_code == 502
        assert "502 Bad Gateway" in api.text
        # The dashboard on the admin listener; its data needs the token beside the file.
        admin = f"http://127.0.0.1:{admin_port}"
        dashboard = wait_until(lambda: _get_or_none(admin + "/"), 20, "the dashboard")
        assert dashboard.status_code == 200 and "<title>dakia-prefork" in dashboard.text
        assert requests.get(admin + "/status", timeout=5).status_code == 401
        status = requests.get(admin + "/status", timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200 and len(status.json()["workers"]) == 2
    finally:
        process.terminate()
        process.wait(15)
        log.close()
