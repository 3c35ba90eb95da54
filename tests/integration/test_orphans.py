"""No orphaned worker: when the master dies, its workers and health checker follow.

The real master is SIGKILLed (it gets no chance to stop anything); its workers were asked
for a parent-death signal (PR_SET_PDEATHSIG) and check their parent on every heartbeat, so
they drain and exit within a bounded time, and a fresh ``start`` on the same config binds
the same port and serves.
"""
from __future__ import annotations

import os
import re
import signal

import pytest
import requests

from dakia_prefork.procs import alive

from .harness import node, wait_until

pytestmark = pytest.mark.timeout(120)


def test_workers_and_the_health_checker_exit_when_the_master_is_killed(upstreams, gateways,
                                                                        engine):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)],
                    "health_check": {"path": "/", "interval": 1, "timeout": 1}}],
                  workers=2, engine=engine)
    workers = [w["pid"] for w in gw.workers()]
    assert len(workers) == 2
    checker = wait_until(lambda: re.search(r"health checker (\d+) started", gw.log_text()),
                         10, "the health checker")
    children = [*workers, int(checker.group(1))]
    assert all(alive(pid) for pid in children)
    assert requests.get(gw.url + "/", timeout=5).text == "app"
    os.kill(gw.master_pid, signal.SIGKILL)
    gw.process.wait(10)
    # Bounded: an idle worker drains at once; graceful_timeout (10 s here) bounds a busy one.
    wait_until(lambda: not any(alive(pid) for pid in children), 15,
               "the workers and the health checker to exit")
    # The port is free again and the stale segments are swept: a fresh start serves.
    gw.start()
    assert requests.get(gw.url + "/", timeout=5).text == "app"
    assert not set(w["pid"] for w in gw.workers()) & set(workers)


def test_a_busy_worker_finishes_its_request_before_following_the_master(upstreams, gateways):
    import threading
    release = threading.Event()

    def slow(request, sock):
        release.wait(10)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
    up = upstreams(slow)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=1)
    pid = gw.workers()[0]["pid"]
    result: dict[str, requests.Response] = {}
    client = threading.Thread(target=lambda: result.setdefault(
        "r", requests.get(gw.url + "/", timeout=20)))
    client.start()
    wait_until(lambda: up.received, 5, "the request to reach the upstream")
    os.kill(gw.master_pid, signal.SIGKILL)
    gw.process.wait(10)
    assert alive(pid)                 # draining: the request in flight is not cut
    release.set()
    client.join(15)
    assert result["r"].status_code == 200 and result["r"].text == "done"
    wait_until(lambda: not alive(pid), 15, "the worker to exit after its last request")


def test_orphaned_is_a_parent_check():
    from dakia_prefork.procs import die_with_parent, orphaned
    assert orphaned(os.getppid()) is False
    assert orphaned(os.getppid() + 1 if os.getppid() != 1 else 2) is True
    assert die_with_parent(0) is True          # 0 clears it: Linux has the call
