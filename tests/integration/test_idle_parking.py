"""Idle keep-alive connections are parked: they leave their greenlet and wait on a watcher
(http/connection.py, worker/serve.py). A parked connection serves its next request, is
closed at its keep-alive timeout, and is closed by a graceful stop, as one in a greenlet."""
from __future__ import annotations

import signal
import socket
import time
from typing import Any, Callable

from .harness import Gateway, Upstream, node, read_responses, wait_until

PARKING = "idle keep-alive connection(s)"
CONNECTIONS = 40


def _gateway(upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway], engine: str,
             **limits: Any) -> Gateway:
    upstream = upstreams()
    return gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                    extra={"limits": limits, "log_level": "debug"})


def _served(sock: socket.socket) -> None:
    sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    [(response, _body)] = read_responses(sock, 1)
    assert response.status_code == 200, response


def _idle_connections(gw: Gateway, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections that each had one request answered."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        socks.append(sock)
        _served(sock)
    return socks


def _parked(gw: Gateway) -> None:
    wait_until(lambda: PARKING in gw.log_text(), 10, "the worker to park idle connections")


def _closed_within(sock: socket.socket, seconds: float) -> float:
    started = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def test_parked_connections_serve_their_next_request(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine, keepalive_timeout=60)
    workers = [w["pid"] for w in gw.workers()]
    socks = _idle_connections(gw, CONNECTIONS)
    try:
        _parked(gw)
        for sock in socks:                  # each comes back to a new greenlet
            _served(sock)
        for sock in reversed(socks):        # and again, in another order
            _served(sock)
        assert [w["pid"] for w in gw.workers()] == workers      # no worker died for it
    finally:
        for sock in socks:
            sock.close()


def test_a_parked_connection_closes_at_its_keepalive_timeout(upstreams, gateways,
                                                              engine) -> None:
    gw = _gateway(upstreams, gateways, engine, keepalive_timeout=2)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        _served(sock)
        took = _closed_within(sock, 10)
        assert PARKING in gw.log_text()     # it was parked on the way to its timeout
    assert 1.9 <= took < 3.5, took


def test_a_client_closing_a_parked_connection_frees_its_place(upstreams, gateways,
                                                               engine) -> None:
    gw = _gateway(upstreams, gateways, engine, keepalive_timeout=60, max_connections=3)
    socks = _idle_connections(gw, 3)
    _parked(gw)
    for sock in socks:
        sock.close()
    # With max_connections 3, a fourth is only served once the parked ones were let go.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        _served(sock)


def test_a_graceful_stop_closes_parked_connections(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine, keepalive_timeout=60)
    socks = _idle_connections(gw, 10)
    try:
        _parked(gw)
        gw.signal(signal.SIGQUIT)
        for sock in socks:
            assert _closed_within(sock, 10) < 10
        assert gw.process is not None
        assert gw.process.wait(15) == 0
    finally:
        for sock in socks:
            sock.close()
