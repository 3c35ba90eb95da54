"""Zero-downtime operations under continuous keep-alive load: reload, listener changes,
binary upgrade, TTIN/TTOU, WINCH, killed and stuck workers, systemd conventions."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests

from dakia_prefork.master import pidfile

from .harness import ROOT, free_port, node, wait_until
from .load import Load


def _two_upstreams(upstreams):
    return upstreams(name="blue"), upstreams(name="green")


def _routed(gw, target: str) -> None:
    gw.config["gateways"][0]["routers"] = [{"upstream": target}]
    gw.write_config()


def test_reload_with_route_change_under_load(upstreams, gateways):
    blue, green = _two_upstreams(upstreams)
    gw = gateways([{"name": "blue", "upstream_nodes": [node(blue.port)]},
                   {"name": "green", "upstream_nodes": [node(green.port)]}], workers=2,
                  gateway={"routers": [{"upstream": "blue"}]})
    pids = sorted(w["pid"] for w in gw.workers())
    with Load(gw.url, clients=4) as load:
        _routed(gw, "green")
        result = gw.cli("reload")
        assert result.returncode == 0, result.stderr
        assert "config v2" in result.stdout
        switched = time.monotonic()
        time.sleep(1.0)
        load.wait_for(50)
        later = load.bodies_since(switched + 1.0)
    assert load.result.failures == []
    assert later and set(later) == {"green"}, later
    assert sorted(w["pid"] for w in gw.workers()) == pids        # no worker restarted
    assert {w["config_version"] for w in gw.workers()} == {2}


def test_reload_with_invalid_file_changes_nothing(upstreams, gateways):
    blue, green = _two_upstreams(upstreams)
    gw = gateways([{"name": "blue", "upstream_nodes": [node(blue.port)]},
                   {"name": "green", "upstream_nodes": [node(green.port)]}], workers=2,
                  gateway={"routers": [{"upstream": "blue"}]})
    with Load(gw.url, clients=4) as load:
        gw.config["gateways"][0]["routers"] = [{"upstream": "green", "filter": "missing"}]
        gw.write_config()
        result = gw.cli("reload")
        assert result.returncode != 0
        assert "gateways[0].routers[0].filter" in result.stderr
        # The master itself refuses it too when signalled directly.
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in gw.log_text(), 5, "the refusal in the log")
        load.wait_for(50)
    assert load.result.failures == []
    assert set(load.result.bodies) == {"blue"}
    assert {w["config_version"] for w in gw.workers()} == {1}


def test_reload_adds_and_removes_listeners(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    first = gw.port
    second = free_port()
    with Load(gw.url, clients=3) as load:
        gw.config["gateways"][0]["bind_addresses"].append({"host": "127.0.0.1", "port": second})
        gw.write_config()
        assert gw.cli("reload").returncode == 0
        wait_until(lambda: _answers(second), 10, "the added listener")
        load.wait_for(30)
    assert load.result.failures == []
    # Remove the first listener while traffic flows on the second.
    with Load(f"http://127.0.0.1:{second}", clients=3) as load:
        gw.config["gateways"][0]["bind_addresses"] = [{"host": "127.0.0.1", "port": second}]
        gw.write_config()
        assert gw.cli("reload").returncode == 0
        wait_until(lambda: _refused(first), 15, "the removed listener to close")
        load.wait_for(30)
    assert load.result.failures == []


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _refused(port: int) -> bool:
    """True once nothing listens on ``port``. A reset (the listener closed with this
    connection still in its queue) means it is closing, not closed: poll again."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    return False


def test_binary_upgrade_under_load(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    old = gw.master_pid
    with Load(gw.url, clients=4) as load:
        result = gw.cli("upgrade", timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        load.wait_for(50)
    assert load.result.failures == []
    new = pidfile.read(gw.config["pid_file"])
    assert new is not None and new != old
    assert not os.path.exists(gw.config["pid_file"] + ".oldbin")
    assert gw.process.wait(10) == 0             # the old master exited cleanly
    assert len([w for w in gw.workers() if w["state"] == "ready"]) == 2
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
    stop = gw.cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert not pidfile.alive(new)


def test_failed_upgrade_keeps_the_old_master(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=1)
    old = gw.master_pid
    valid = dict(gw.config)
    with Load(gw.url, clients=2) as load:
        # An invalid file is refused before anything is signalled.
        gw.config["gateways"][0]["routers"] = [{"upstream": "nope"}]
        gw.write_config()
        result = gw.cli("upgrade", timeout=60)
        assert result.returncode == 1
        assert "upgrade refused" in result.stderr
        assert "gateways[0].routers[0].upstream" in result.stderr
        # A valid file the new master still cannot start with (its error log is a
        # directory): it exits, and the old master restores its pid file and serves on.
        gw.config = valid
        gw.config["gateways"][0].pop("routers")
        gw.config["error_log"] = gw.tmp
        gw.write_config()
        result = gw.cli("upgrade", timeout=60)
        assert result.returncode == 1
        assert "keeps serving" in result.stderr
        load.wait_for(20)
    assert load.result.failures == []
    assert pidfile.read(gw.config["pid_file"]) == old
    assert not os.path.exists(gw.config["pid_file"] + ".oldbin")


def test_ttin_then_ttou_under_load(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    with Load(gw.url, clients=4) as load:
        gw.signal(signal.SIGTTIN)
        wait_until(lambda: _ready_slots(gw) == {0, 1, 2} and len(gw.workers()) == 3, 10,
                   "a third worker")
        load.wait_for(30)
        gw.signal(signal.SIGTTOU)
        wait_until(lambda: _ready_slots(gw) == {0, 1} and len(gw.workers()) == 2, 15,
                   "back to two workers")
        load.wait_for(50)
    assert load.result.failures == []
    # Nothing queued on the socket of the removed slot is lost: new connections all answer.
    for _ in range(30):
        r = requests.get(gw.url + "/", headers={"Connection": "close"}, timeout=5)
        assert r.status_code == 200


def _ready_slots(gw) -> set[int]:
    return {w["slot"] for w in gw.workers() if w["state"] == "ready"}


def test_winch_stops_workers_and_hup_brings_them_back(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    gw.signal(signal.SIGWINCH)
    wait_until(lambda: gw.workers() == [], 15, "the workers to stop")
    assert gw.process.poll() is None
    gw.signal(signal.SIGHUP)
    wait_until(lambda: len(_ready_slots(gw)) == 2, 15, "the workers to come back")
    assert requests.get(gw.url + "/", timeout=5).status_code == 200


def test_killed_worker_loses_only_requests_in_flight(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    with Load(gw.url, clients=4) as load:
        victim = gw.workers()[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        load.wait_for(100)
        failed_late = [t for when, ok, t in load.timeline if not ok and when > killed + 1.0]
    # Only connections open on the killed worker may fail, once each.
    assert len(load.result.failures) <= 4, load.result.failures
    assert failed_late == []
    wait_until(lambda: len(_ready_slots(gw)) == 2, 5, "the replacement")


def test_repeated_kills_while_workers_contend_on_shared_memory(upstreams, gateways):
    """Workers hammer one round-robin counter (range locks in shared memory) while they are
    SIGKILLed one after the other: the survivors and the master never stall."""
    a, b = upstreams(name="a"), upstreams(name="b")
    gw = gateways([{"name": "app", "upstream_nodes": [node(a.port), node(b.port)]}],
                  workers=2)
    with Load(gw.url, clients=6) as load:
        for _ in range(6):
            victim = gw.workers()[0]["pid"]
            os.kill(victim, signal.SIGKILL)
            load.wait_for(60, timeout=5)       # progress continues after every kill
            wait_until(lambda: len(_ready_slots(gw)) == 2, 5, "the replacement")
    status = gw.cli("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["running"]
    assert len(load.result.failures) <= 6 * 6, load.result.failures
    bodies = load.result.bodies
    assert abs(bodies["a"] - bodies["b"]) <= 0.1 * (bodies["a"] + bodies["b"]), bodies


def test_stuck_worker_is_replaced_after_worker_timeout(upstreams, gateways):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=1,
                  extra={"worker_timeout": 2})
    [worker] = gw.workers()
    os.kill(worker["pid"], signal.SIGSTOP)         # as good as stuck in a CPU loop
    try:
        replaced = wait_until(lambda: [w for w in gw.workers() if w["pid"] != worker["pid"]
                                       and w["state"] == "ready"], 10, "a replacement")
    finally:
        try:
            os.kill(worker["pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert replaced
    assert "sent no heartbeat" in gw.log_text()
    assert requests.get(gw.url + "/", timeout=5).status_code == 200


def test_worker_crashing_at_boot_backs_off(upstreams, gateways, tmp_path):
    up = upstreams(name="up")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=1)
    access_log = gw.config["access_log"]
    # From now on a new worker cannot open its access log, so it dies at boot.
    os.unlink(access_log)
    os.mkdir(access_log)
    os.kill(gw.workers()[0]["pid"], signal.SIGKILL)
    time.sleep(3.0)
    spawns = gw.log_text().count("started in slot 0")
    # Back-off 0.25, 0.5, 1, 2 s: a handful of attempts in 3 s, not a fork storm.
    assert 2 <= spawns <= 7, spawns
    assert "respawning in" in gw.log_text()
    os.rmdir(access_log)
    wait_until(lambda: len(_ready_slots(gw)) == 1, 20, "a worker once the cause is gone")


def test_sd_notify_and_socket_activation(upstreams, tmp_path):
    """Started as systemd would: the listening socket passed as fd 3 (LISTEN_FDS), and
    readiness, reload and stop reported on NOTIFY_SOCKET."""
    from .harness import gateway_config
    import yaml
    up = upstreams(name="activated")
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = gateway_config(str(tmp_path), port, [{"name": "app",
                                                   "upstream_nodes": [node(up.port)]}],
                            workers=2)
    path = tmp_path / "dakia.yaml"
    path.write_text(yaml.safe_dump(config))
    launcher = ("import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); "
                "os.execv(sys.executable, [sys.executable, '-m', 'dakia_prefork.cli', "
                f"'start', '-c', {str(path)!r}])")
    env = dict(os.environ, LISTEN_FDS="1", NOTIFY_SOCKET=notify_path)
    log = open(tmp_path / "master.log", "wb")
    process = subprocess.Popen([sys.executable, "-c", launcher], env=env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT,
                               # fd 3, as systemd passes it; kept open by pass_fds
                               preexec_fn=lambda: os.dup2(listener.fileno(), 3),
                               pass_fds=(3,))
    try:
        messages = _read_notifications(notify, "READY=1")
        assert f"MAINPID={process.pid}" in messages
        # The port is still held by this test, so the master can only serve it by adoption.
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "activated"
        process.send_signal(signal.SIGHUP)
        assert "RELOADING=1" in _read_notifications(notify, "RELOADING=1")
        assert "READY=1" in _read_notifications(notify, "READY=1")
        process.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in _read_notifications(notify, "STOPPING=1")
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        log.close()
        notify.close()
        listener.close()


def _read_notifications(sock: socket.socket, until: str) -> str:
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if until in message:
            return "\n".join(seen)
