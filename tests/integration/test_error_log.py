"""The error log of a real master: every line carries its level, `log_level` filters in the
master and the workers and follows a reload, and USR1 reopens it (logrotate) in the
master, the workers and the health checker."""
from __future__ import annotations

import os
import re
import signal
import threading
from typing import Any

import requests

from .harness import Gateway, free_port, node, wait_until

# asctime [LEVEL] pid logger: message
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] "
                  r"(\d+) dakia(\.[\w.]+)?: ")


def lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def parsed(path: str) -> list[tuple[str, int, str]]:
    """(level, pid, line) of every line, each of which must have the format."""
    out = []
    for line in lines(path):
        match = LINE.match(line)
        assert match, f"a line without its level: {line!r}"
        out.append((match.group(1), int(match.group(2)), line))
    return out


def routed_gateway(gateways: Any, upstreams: Any, error_log: str, **kwargs: Any) -> Gateway:
    """`/down` goes to a node nothing listens on: each request there makes the worker
    serving it log an error (502)."""
    up = upstreams(name="app")
    specs = [{"name": "app", "upstream_nodes": [node(up.port)]},
             {"name": "down", "upstream_nodes": [node(free_port())]}]
    specs[0].update(kwargs.pop("app", {}))
    extra = {"error_log": error_log, **kwargs.pop("extra", {})}
    return gateways(specs, extra=extra,
                    gateway={"routers": [{"upstream": "down", "filter": "down"},
                                         {"upstream": "app"}],
                             "filters": [{"name": "down", "path": {"$starts_with": "/down"}}]},
                    **kwargs)


def fail_once(gw: Gateway) -> None:
    assert requests.get(gw.url + "/down", timeout=10).status_code == 502


def worker_pids(gw: Gateway) -> set[int]:
    return {w["pid"] for w in gw.workers()}


def test_every_line_has_its_level_and_log_level_filters_and_follows_reloads(upstreams,
                                                                            gateways, tmp_path):
    error_log = str(tmp_path / "error.log")
    gw = routed_gateway(gateways, upstreams, error_log, extra={"log_level": "debug"})
    [worker] = worker_pids(gw)
    master = gw.master_pid
    # debug: the worker's debug line and the master's info lines are written.
    wait_until(lambda: any(level == "DEBUG" and pid == worker
                           for level, pid, _ in parsed(error_log)), 5, "a worker debug line")
    assert any(level == "INFO" and pid == master for level, pid, _ in parsed(error_log))
    fail_once(gw)
    wait_until(lambda: any(level == "ERROR" and pid == worker and "upstream down" in line
                           for level, pid, line in parsed(error_log)), 5, "the worker's error")

    # warning: info and debug stop in both processes, errors still come.
    gw.config["log_level"] = "warning"
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    wait_until(lambda: [w["config_version"] for w in gw.workers()] == [2], 10, "v2")
    mark = len(parsed(error_log))
    fail_once(gw)
    wait_until(lambda: [(level, pid) for level, pid, _ in parsed(error_log)[mark:]]
               == [("ERROR", worker)], 5, "only the worker's error after the reload")
    gw.signal(signal.SIGTTIN)              # the master logs the new worker at info: not now
    wait_until(lambda: len(worker_pids(gw)) == 2, 10, "a second worker")
    gw.signal(signal.SIGTTOU)
    wait_until(lambda: len(worker_pids(gw)) == 1, 15, "back to one worker")
    assert [level for level, _, _ in parsed(error_log)[mark:]] == ["ERROR"]

    # info again: the reload's own lines (master and worker) are written.
    gw.config["log_level"] = "info"
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    [now] = worker_pids(gw)
    wait_until(lambda: any(pid == now and "now serves config v3" in line
                           for _, pid, line in parsed(error_log)), 10, "the worker's info")
    assert any(pid == master and level == "INFO" and "published config v3" in line
               for level, pid, line in parsed(error_log))
    assert not any(level == "DEBUG" for level, _, _ in parsed(error_log)[mark:])


def test_usr1_reopens_the_error_log_in_the_master_the_workers_and_the_health_checker(
        upstreams, gateways, tmp_path):
    error_log = str(tmp_path / "error.log")
    sick = threading.Event()

    def app(request: Any, sock: Any) -> bytes:
        status = b"500 Sick" if sick.is_set() and request.target == "/hc" else b"200 OK"
        return b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\nok"
    up = upstreams(app, name="checked")
    gw: Gateway = gateways(
        [{"name": "app", "upstream_nodes": [node(up.port)],
          "health_check": {"path": "/hc", "interval": 0.1, "unhealthy_threshold": 1}},
         {"name": "down", "upstream_nodes": [node(free_port())]}],
        workers=2, extra={"error_log": error_log},
        gateway={"routers": [{"upstream": "down", "filter": "down"}, {"upstream": "app"}],
                 "filters": [{"name": "down", "path": {"$starts_with": "/down"}}]})
    workers = worker_pids(gw)
    wait_until(lambda: any("health checker" in line for line in lines(error_log)), 10,
               "the health checker's first line")
    rotated = error_log + ".1"
    os.rename(error_log, rotated)           # what logrotate does before its postrotate
    gw.signal(signal.SIGUSR1)
    wait_until(lambda: any(pid == gw.master_pid and "USR1: log files reopened" in line
                           for _, pid, line in parsed(error_log)), 5,
               "the master's line in the new file")

    def every_worker_wrote_anew() -> bool:
        fail_once(gw)              # the kernel spreads connections over both workers
        return workers <= {pid for _, pid, _ in parsed(error_log)}
    wait_until(every_worker_wrote_anew, 10, "a line from each worker in the new file",
               interval=0.05)
    sick.set()
    wait_until(lambda: any("is unhealthy" in line and pid not in workers | {gw.master_pid}
                           for _, pid, line in parsed(error_log)), 10,
               "the health checker's line in the new file")
    # Everything now goes to the new file: the rotated one has stopped growing.
    size = os.path.getsize(rotated)
    for _ in range(6):
        fail_once(gw)
    gw.signal(signal.SIGTTIN)              # a master line, and a new worker's
    wait_until(lambda: len(worker_pids(gw)) == 3, 10, "a third worker")
    assert os.path.getsize(rotated) == size
    assert all(LINE.match(line) for line in lines(rotated))


def test_usr1_while_workers_boot_costs_no_worker(upstreams, gateways, tmp_path):
    """logrotate may send USR1 at any moment, also while a worker is starting: before its
    handler is in, the signal must be ignored (its default action kills). Workers are
    started over and over (TTIN, TTOU) while USR1 arrives every few milliseconds."""
    error_log = str(tmp_path / "error.log")
    up = upstreams(name="app")
    gw: Gateway = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                           workers=1, extra={"error_log": error_log})
    for count in (2, 1) * 4:
        gw.signal(signal.SIGTTIN if count == 2 else signal.SIGTTOU)
        deadline_hit = True
        for _ in range(500):                         # up to ~2.5 s of USR1 every 5 ms
            gw.signal(signal.SIGUSR1)
            ready = [w for w in gw.workers() if w["state"] == "ready"]
            if len(ready) == count and len(worker_pids(gw)) == count:
                deadline_hit = False
                break
            threading.Event().wait(0.005)
        assert not deadline_hit, f"never {count} ready worker(s): {gw.workers()}"
    killed = [line for line in lines(error_log) if "killed by SIGUSR1" in line]
    assert killed == [], killed
    assert requests.get(gw.url + "/", timeout=10).status_code == 200
