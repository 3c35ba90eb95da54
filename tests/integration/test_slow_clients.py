"""Slow clients (issue 9, part 9): a client that drips its request cannot keep its slot.

``limits.client_header_timeout`` bounds a whole request head from its first byte, however
many reads it takes; ``client_body_timeout`` bounds the gaps in a body. Hundreds of
dripping connections at once are each answered 408 and closed when their deadline passes,
while a normal request on the same worker is served as usual.

The drippers run in one thread over non-blocking sockets (a selector), so the test itself
stays light: every connection gets its next byte on a fixed cadence, and the time from its
first byte to the gateway's close is measured per connection.
"""
from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .harness import Gateway, Upstream, node

TIMEOUT = 1            # the client timeouts set for these tests, in seconds
DRIP_EVERY = 0.3       # well under TIMEOUT: no single read ever waits as long as TIMEOUT
# The deadline is enforced within the sweeper's 0.25 s, then the answer goes out; the rest
# is room for a loaded 2-core machine.
SLACK = 2.5


@dataclass
class Dripper:
    sock: socket.socket
    prefix: bytes                       # sent at once
    drip: bytes                         # then one byte at a time
    first_byte: float = 0.0
    closed_after: float | None = None
    received: bytearray = field(default_factory=bytearray)
    sent: int = 0


def _drip(port: int, count: int, prefix: bytes, drip: bytes, limit: float) -> list[Dripper]:
    """Open ``count`` connections, send ``prefix`` on each, then one byte of ``drip`` every
    DRIP_EVERY seconds, until the gateway closes each one (or ``limit`` seconds pass)."""
    selector = selectors.DefaultSelector()
    drippers = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            d = Dripper(sock, prefix, drip)
            sock.send(prefix)
            d.first_byte = time.monotonic()
            selector.register(sock, selectors.EVENT_READ, d)
            drippers.append(d)
        open_ = set(range(count))
        end = time.monotonic() + limit
        next_drip = time.monotonic() + DRIP_EVERY
        while open_ and time.monotonic() < end:
            for key, _mask in selector.select(timeout=0.05):
                d = key.data
                try:
                    data = d.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    d.received += data
                    continue
                d.closed_after = time.monotonic() - d.first_byte
                selector.unregister(d.sock)
                open_.discard(drippers.index(d))
            now = time.monotonic()
            if now >= next_drip:
                next_drip = now + DRIP_EVERY
                for i in list(open_):
                    d = drippers[i]
                    if d.sent < len(d.drip):
                        try:
                            d.sock.send(d.drip[d.sent:d.sent + 1])
                            d.sent += 1
                        except OSError:
                            pass        # closed by the gateway: seen on the read side
        return drippers
    finally:
        selector.close()
        for d in drippers:
            d.sock.close()


class Prober(threading.Thread):
    """Normal requests on their own connections while the drippers drip."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"GET /probe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                if not data.startswith(b"HTTP/1.1 200 "):
                    self.failures.append(repr(data[:80]))
            except OSError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.monotonic() - started)
            self.stop.wait(0.1)


def _gateway(upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway],
             engine: str) -> Gateway:
    upstream = upstreams()
    return gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                    extra={"limits": {"client_header_timeout": TIMEOUT,
                                      "client_body_timeout": TIMEOUT}})


def _check(drippers: list[Dripper], bound: float) -> None:
    late = [d.closed_after for d in drippers
            if d.closed_after is None or d.closed_after > bound]
    assert late == [], f"{len(late)} of {len(drippers)} kept their slot: {late[:10]}"
    for d in drippers:
        assert bytes(d.received).startswith(b"HTTP/1.1 408 "), bytes(d.received[:100])
        assert b"connection: close" in bytes(d.received).lower()
        # The head deadline runs from the first byte: never answered before it passed.
        assert d.closed_after >= TIMEOUT - 0.05, d.closed_after


def _with_probe(gw: Gateway, work: Callable[[], list[Dripper]]) -> tuple[list[Dripper],
                                                                           Prober]:
    prober = Prober(gw.port)
    prober.start()
    try:
        drippers = work()
    finally:
        prober.stop.set()
        prober.join(10)
    return drippers, prober


def _probe_ok(prober: Prober) -> None:
    assert prober.failures == []
    assert len(prober.latencies) >= 3
    assert max(prober.latencies) < 1.0, sorted(prober.latencies)[-5:]


def test_hundreds_of_dripping_heads_are_answered_408(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine)
    # A byte every 0.3 s never lets a single read wait TIMEOUT: only a deadline for the
    # whole head stops these.
    drippers, prober = _with_probe(gw, lambda: _drip(
        gw.port, 300, b"GET / HTTP/1.1\r\n", b"x-drip: " + b"a" * 200, TIMEOUT + SLACK + 3))
    _check(drippers, TIMEOUT + SLACK)
    _probe_ok(prober)


def test_a_head_dripped_after_a_keep_alive_response_is_answered_408(
        upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine)
    first = b"GET /one HTTP/1.1\r\nhost: x\r\n\r\n"
    drippers = _drip(gw.port, 20, first + b"GET /two HTTP/1.1\r\n", b"x-drip: " + b"a" * 200,
                     TIMEOUT + SLACK + 3)
    late = [d.closed_after for d in drippers
            if d.closed_after is None or d.closed_after > TIMEOUT + SLACK]
    assert late == []
    for d in drippers:
        data = bytes(d.received)
        assert data.startswith(b"HTTP/1.1 200 "), data[:100]
        assert data.count(b"HTTP/1.1 408 ") == 1, data


def test_many_stalled_bodies_are_answered_408(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine)
    # Part of the body, then a gap longer than client_body_timeout (the drip is empty).
    drippers, prober = _with_probe(gw, lambda: _drip(
        gw.port, 150, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nsome",
        b"", TIMEOUT + SLACK + 3))
    _check(drippers, TIMEOUT + SLACK)
    _probe_ok(prober)


def test_a_body_whose_gaps_stay_under_the_timeout_is_served(upstreams, gateways,
                                                             engine) -> None:
    """client_body_timeout bounds the gaps, not the whole body: a body that takes longer
    than the timeout in all, in pieces that each come in time, goes through."""
    gw = _gateway(upstreams, gateways, engine)
    body = b"0123456789"
    started = time.monotonic()
    drippers = _drip(gw.port, 3, b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
                     b"content-length: %d\r\n\r\n" % len(body), body, 10)
    assert time.monotonic() - started > TIMEOUT * 2     # longer than the timeout in all
    for d in drippers:
        assert bytes(d.received).startswith(b"HTTP/1.1 200 "), bytes(d.received[:100])
