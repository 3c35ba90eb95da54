"""Helpers for the traffic-control tests: handlers, shared node state, reloads, load."""
from __future__ import annotations

import threading
import time
from typing import Any

import requests

from dakia_prefork.shm.nodestats import NodeSnapshot, NodeStats
from dakia_prefork.shm.segment import Segment, segment_name

from .harness import wait_until
from .load import Load

def policy(algorithm: str) -> dict[str, Any]:
    return {"node_selection_algorithm": algorithm}

def delayed(name: str, delay: list[float]) -> Any:
    """A handler answering ``name`` after ``delay[0]`` seconds (changeable while running)."""
    def handle(request, sock):
        if delay[0]:
            time.sleep(delay[0])
        body = name.encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    return handle

def held(name: str, release: "threading.Event", timeout: float = 30.0) -> Any:
    """A handler answering ``name`` once ``release`` is set (or after ``timeout``)."""
    def handle(request, sock):
        release.wait(timeout)
        body = name.encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    return handle

def hangs_up(request, sock):
    """Reads the request, then closes without answering."""
    return None

def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)

def node_state(gw, upstream: str, label: str, gateway: str = "test") -> NodeSnapshot:
    """The shared state of one node, read from the running master's segment."""
    from dakia_prefork.master import pidfile
    pid = pidfile.read(gw.config["pid_file"])
    seg = Segment(segment_name(gw.config["state_dir"], pid, "nodes"), 0, create=False)
    try:
        stats = NodeStats(seg)
        index = stats.index_for(f"{gateway}/{upstream}/{label}")
        return stats.snapshot(index, time.monotonic())
    finally:
        seg.close()

def reload_config(gw, version: int) -> None:
    gw.write_config()
    done = gw.cli("reload")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: all(w["config_version"] == version for w in gw.workers()), 10,
               f"workers on config v{version}")

def stop_under_load(gw, victim, detected) -> tuple[Load, float]:
    with Load(gw.url, clients=4) as load:
        load.wait_for(100)
        victim.close()
        wait_until(detected, 15, "the stopped node to be detected")
        found = time.monotonic()
        load.wait_for(200)
    return load, found

