"""The access log through the running gateway: its fields (request id, upstream node and
time, bytes) in json and in a template, and both logs reopened on USR1 (logrotate)."""
from __future__ import annotations

import json
import os
import signal

import requests

from .harness import Gateway, free_port, node, wait_until


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _line_with(path: str, text: str) -> str:
    def find() -> str | None:
        return next((line for line in _lines(path) if text in line), None)
    return wait_until(find, 5, f"the access-log line with {text!r} in {path}")


def _holds(pid: int, path: str) -> bool:
    """Whether process ``pid`` has ``path`` open (by its name now)."""
    directory = f"/proc/{pid}/fd"
    for fd in os.listdir(directory):
        try:
            if os.readlink(os.path.join(directory, fd)) == path:
                return True
        except OSError:
            continue
    return False


def _start(upstreams, gateways, engine: str, fmt: str, **extra: object) -> tuple[Gateway, int]:
    up = upstreams(name="hello")
    dead = free_port()                    # nothing listens: 502, and an error-log line
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]},
                   {"name": "dead", "upstream_nodes": [node(dead)]}],
                  engine=engine, workers=2,
                  extra={"access_log_format": fmt, **extra},
                  gateway={"routers": [{"upstream": "dead", "filter": "dead"},
                                       {"upstream": "app"}],
                           "filters": [{"name": "dead", "path": {"$starts_with": "/dead"}}],
                           "interceptors": [{"name": "request_id"}]})
    return gw, up.port


def test_json_lines_carry_the_request_id_upstream_times_and_bytes(engine, upstreams,
                                                                  gateways):
    gw, port = _start(upstreams, gateways, engine, "json")
    response = requests.post(gw.url + "/upload?a=1", data=b"x" * 321, timeout=10)
    assert response.status_code == 200
    line = json.loads(_line_with(gw.config["access_log"], "/upload?a=1"))
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["upstream_addr"] == f"127.0.0.1:{port}"
    assert line["request_bytes"] == 321 and line["body_bytes_sent"] == 5
    assert line["status"] == 200 and line["method"] == "POST"
    assert 0 <= line["upstream_time"] <= line["request_time"] < 5
    # The gateway's own answer (a 502 from a dead node): its node, no response from it.
    assert requests.get(gw.url + "/dead", timeout=10).status_code == 502
    dead = json.loads(_line_with(gw.config["access_log"], '"target":"/dead"'))
    assert dead["status"] == 502 and dead["upstream_addr"].startswith("127.0.0.1:")
    assert dead["upstream_time"] is not None and dead["request_bytes"] == 0


def test_a_template_and_the_fields_chosen(upstreams, gateways):
    gw, port = _start(upstreams, gateways, "h11",
                      "$method $target $status $upstream_addr $request_bytes $request_id")
    response = requests.put(gw.url + "/t1", data=b"abc", timeout=10)
    line = _line_with(gw.config["access_log"], "/t1")
    assert line == f"PUT /t1 200 127.0.0.1:{port} 3 {response.headers['x-request-id']}"


def test_usr1_reopens_the_access_log_and_the_error_log(upstreams, gateways):
    gw, _port = _start(upstreams, gateways, "h11", "combined",
                       error_log="error.log")
    access = gw.config["access_log"]
    error = os.path.join(gw.tmp, "error.log")
    assert requests.get(gw.url + "/before", timeout=10).status_code == 200
    _line_with(access, "/before")
    assert requests.get(gw.url + "/dead/before", timeout=10).status_code == 502
    wait_until(lambda: any("/dead/before" in line for line in _lines(error)), 5,
               "the 502 in the error log")
    os.rename(access, access + ".1")
    os.rename(error, error + ".1")
    pids = [w["pid"] for w in gw.workers()]
    assert any(_holds(pid, access + ".1") for pid in pids)
    gw.signal(signal.SIGUSR1)
    # Each worker reopens on the signal the master passes on (flushing its buffered
    # lines into the old file first): done when no worker holds a rotated file open.
    wait_until(lambda: not any(_holds(pid, path) for pid in [gw.master_pid, *pids]
                               for path in (access + ".1", error + ".1")), 10,
               "every process to reopen its logs")
    assert os.path.exists(access) and os.path.exists(error)
    rotated_access = len(_lines(access + ".1"))
    rotated_error = len(_lines(error + ".1"))
    for i in range(10):                   # separate connections: both workers serve some
        assert requests.get(gw.url + f"/after/{i}", timeout=10).status_code == 200
        assert requests.get(gw.url + f"/dead/after/{i}", timeout=10).status_code == 502
    for i in range(10):
        _line_with(access, f"/after/{i} ")
        wait_until(lambda: any(f"/dead/after/{i}" in line for line in _lines(error)), 5,
                   f"the 502 of /dead/after/{i} in the new error log")
    assert len(_lines(access + ".1")) == rotated_access
    assert len(_lines(error + ".1")) == rotated_error
    # Both workers served some (they report every second).
    wait_until(lambda: (lambda served: len(served) == 2 and all(served))(
        [w["requests"] for w in gw.workers()]), 10, "requests served by both workers")
