"""No stranded slot: while a slot has no live worker, the others serve its socket's queue.

Slot 1 of a 2-worker gateway is kept dead: a thread SIGKILLs every worker the master starts
in it, mostly while it boots, so the master backs off (0.25 s doubling to 16 s) and the
slot stays vacant. The kernel keeps hashing about half the new connections to slot 1's
SO_REUSEPORT socket; every one of them must still be answered, by the slot 0 worker, which
the master tells to cover the vacant slot after its grace (about 2 s).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dakia_prefork.master.arbiter import COVER_GRACE

from .harness import Gateway, node, read_responses, wait_until

pytestmark = pytest.mark.timeout(120)


class SlotKiller:
    """Kills every worker of ``slot`` as soon as the control block shows it."""

    def __init__(self, gw: Gateway, slot: int) -> None:
        self.gw = gw
        self.slot = slot
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlotKiller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for worker in self.gw.workers():
                if worker["slot"] == self.slot and worker["pid"] not in self.killed:
                    try:
                        os.kill(worker["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.killed.append(worker["pid"])
            self._stop.wait(0.002)


def _one_request(port: int) -> tuple[int, float]:
    """A new connection (so SO_REUSEPORT picks a socket afresh), one request, its time."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        [(response, body)] = read_responses(sock, 1, timeout=10)
    assert body == b"app"
    return response.status_code, time.monotonic() - started


def test_connections_queued_on_a_vacant_slot_are_served_by_the_others(upstreams, gateways,
                                                                       engine):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2,
                  engine=engine)
    with SlotKiller(gw, 1) as killer:
        wait_until(lambda: killer.killed, 5, "the slot 1 worker to be killed")
        # Many fresh connections over a few seconds, well past the grace.
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = []
            deadline = time.monotonic() + COVER_GRACE + 4.0
            while time.monotonic() < deadline:
                futures.append(pool.submit(_one_request, gw.port))
                time.sleep(0.02)       # pacing the load, not waiting for a state
            results = [f.result(timeout=30) for f in futures]
        assert len(killer.killed) >= 3, killer.killed      # the slot really stayed down
        assert "slot(s) 1 without a ready worker" in gw.log_text()
        report = json.loads(gw.cli("status", "--json").stdout)
        assert report["master"]["vacant_slots"] == [1]
        assert not any(w["slot"] == 1 and w["state"] == "ready" for w in gw.workers())
    assert all(status == 200 for status, _took in results)
    # None waited for slot 1's worker: at most the grace and a poll period beyond it.
    assert max(took for _status, took in results) < COVER_GRACE + 3.0
    assert len(results) > 50
    # Once the killing stops, slot 1 gets its worker back and covering stops.
    wait_until(lambda: any(w["slot"] == 1 and w["state"] == "ready" for w in gw.workers()),
               30, "slot 1 to be filled again")
    wait_until(lambda: "covering stops" in gw.log_text(), 10, "covering to stop")
    for _ in range(20):
        assert _one_request(gw.port)[0] == 200


def test_no_covering_while_every_slot_is_served(upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2)
    victim = next(w for w in gw.workers() if w["slot"] == 1)["pid"]
    os.kill(victim, signal.SIGKILL)     # after it served: replaced at once, no back-off
    wait_until(lambda: any(w["slot"] == 1 and w["state"] == "ready" and w["pid"] != victim
                           for w in gw.workers()), 10, "the replacement")
    for _ in range(10):
        assert _one_request(gw.port)[0] == 200
    assert "without a ready worker" not in gw.log_text()
