"""The client's timeouts, enforced by the worker's deadline sweeper (http/connection.py):
a head that does not arrive in time, an idle keep-alive connection, a body that stalls.
Each test also shows that the same worker keeps serving afterwards."""
from __future__ import annotations

import socket
import time
from typing import Any, Callable

from .harness import Gateway, Upstream, node


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the gateway closes ``sock`` (reads everything it sends meanwhile)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def _gateway(upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway], engine: str,
             **limits: Any) -> Gateway:
    upstream = upstreams()
    return gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                    extra={"limits": limits})


def _still_serves(gw: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_head_not_sent_in_time_is_dropped(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine, client_header_timeout=1)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")          # never finished
        took = _closed_within(s, 5)
    assert 0.9 <= took < 2.5, took
    _still_serves(gw)


def test_an_idle_keep_alive_connection_is_closed(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine, keepalive_timeout=1)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        took = _closed_within(s, 5)
    assert 0.9 <= took < 2.5, took
    _still_serves(gw)


def test_a_stalled_body_is_dropped(upstreams, gateways, engine) -> None:
    gw = _gateway(upstreams, gateways, engine, client_body_timeout=1)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly this")
        took = _closed_within(s, 5)
    assert 0.9 <= took < 2.5, took
    _still_serves(gw)
