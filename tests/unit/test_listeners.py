"""Binding listeners: a port another master of this user holds is refused, even when both
masters bind at the same instant (the probe and the SO_REUSEPORT binds take turns)."""
from __future__ import annotations

import os
import select
import signal
import socket
import time

import pytest

from dakia_prefork.master import listeners
from dakia_prefork.master.listeners import BindError, ListenerSpec

from children import SPAWNED, fork, kill

RACERS = 6
ROUNDS = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _racer(spec: ListenerSpec, go: int, report: int) -> None:
    """Wait for the start, bind ``spec`` (two slots), say how it went, and keep what it
    bound until killed, as a running master would."""
    os.read(go, 1)
    try:
        held = listeners.bind(spec, 2)
    except BindError as exc:
        os.write(report, b"busy" if "already in use" in str(exc) else b"fail")
        os.close(report)
        signal.pause()
    os.write(report, b"ok  ")
    os.close(report)
    assert held.sockets
    signal.pause()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_masters_binding_at_once_never_share_a_port(round_: int) -> None:
    spec = ListenerSpec("g", "tcp", "127.0.0.1", _free_port())
    go_read, go_write = os.pipe()
    reports = []
    pids = []
    try:
        for _ in range(RACERS):
            report_read, report_write = os.pipe()
            pids.append(fork(lambda w=report_write: _racer(spec, go_read, w)))
            os.close(report_write)
            reports.append(report_read)
        os.write(go_write, b"x" * RACERS)          # all start together
        outcomes = []
        for fd in reports:
            # poll, not select: in a long run this process's descriptors pass 1024.
            waiting = select.poll()
            waiting.register(fd, select.POLLIN)
            assert waiting.poll(10_000), "a racer did not report within 10 s"
            outcomes.append(os.read(fd, 4).strip())
        assert sorted(outcomes) == [b"busy"] * (RACERS - 1) + [b"ok"], outcomes
    finally:
        for pid in pids:
            if pid in SPAWNED:
                kill(pid)
        for fd in reports + [go_read, go_write]:
            os.close(fd)


def test_a_turn_held_too_long_is_not_waited_for() -> None:
    with listeners.bind_window():
        # A second taker (another master, or someone squatting on the name) stops waiting
        # after ``wait`` and goes on; the probe alone guards the port then.
        started = time.monotonic()
        with listeners.bind_window(wait=0.05):
            waited = time.monotonic() - started
    assert 0.05 <= waited < listeners.BIND_WINDOW_WAIT


def test_a_port_held_by_anything_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        spec = ListenerSpec("g", "tcp", "127.0.0.1", other.getsockname()[1])
        with pytest.raises(BindError, match="address already in use"):
            listeners.bind(spec, 2)
