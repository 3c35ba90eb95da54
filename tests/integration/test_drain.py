"""Graceful drain (issue 9, part 7): a response that completes after QUIT, or after a
reload retired its worker, carries ``Connection: close``.

The upstream holds its answer until the test lets it go, so the drain begins while the
request is in flight: the keep-alive decision must be taken when the response head goes
out, not when the request went upstream.
"""
from __future__ import annotations

import signal
import socket
import threading
from typing import Callable

import h11

from .harness import Gateway, Received, Upstream, free_port, node, wait_until


class Held:
    """A handler that answers only once ``release`` is set (bounded: 20 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, request: Received, sock: socket.socket) -> bytes:
        if request.target == "/slow":
            self.release.wait(20)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def _response(sock: socket.socket) -> h11.Response:
    sock.settimeout(15)
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    h.send(h11.EndOfMessage())
    response = None
    while True:
        event = h.next_event()
        if event is h11.NEED_DATA:
            h.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("closed before the response ended")


def _connection_header(response: h11.Response) -> bytes:
    return b",".join(v for k, v in response.headers if k == b"connection").lower()


def _in_flight(gw: Gateway, upstream: Upstream) -> socket.socket:
    """A keep-alive client whose request to /slow is being held by the upstream; a first
    request on the same connection shows the connection is kept alive before the drain."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=15)
    sock.sendall(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"close" not in _connection_header(_response(sock))
    sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
    wait_until(lambda: any(r.target == "/slow" for r in upstream.received), 10,
               "the request to reach the upstream")
    return sock


def _draining(gw: Gateway, pid: int) -> bool:
    return any(w["pid"] == pid and w["state"] == "draining" for w in gw.workers())


def test_a_response_completing_after_quit_says_close(upstreams: Callable[..., Upstream],
                                                     gateways: Callable[..., Gateway],
                                                     engine: str) -> None:
    held = Held()
    upstream = upstreams(held)
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine)
    pid = gw.workers()[0]["pid"]
    sock = _in_flight(gw, upstream)
    try:
        gw.signal(signal.SIGQUIT)
        wait_until(lambda: _draining(gw, pid), 10, "the worker to drain")
        held.release.set()
        response = _response(sock)
        assert response.status_code == 200
        assert _connection_header(response) == b"close"
        sock.settimeout(5)
        assert sock.recv(1) == b""            # and the gateway closes it
    finally:
        held.release.set()
        sock.close()
    assert gw.process is not None
    gw.process.wait(15)


def test_a_response_completing_after_a_reload_retired_its_worker_says_close(
        upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway],
        engine: str) -> None:
    held = Held()
    upstream = upstreams(held)
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine)
    pid = gw.workers()[0]["pid"]
    sock = _in_flight(gw, upstream)
    try:
        # A listener change: the master rolls the workers, the old one is retired.
        gw.config["gateways"][0]["bind_addresses"].append(
            {"host": "127.0.0.1", "port": free_port()})
        gw.write_config()
        gw.signal(signal.SIGHUP)
        wait_until(lambda: _draining(gw, pid), 15, "the old worker to be retired")
        held.release.set()
        response = _response(sock)
        assert response.status_code == 200
        assert _connection_header(response) == b"close"
    finally:
        held.release.set()
        sock.close()
    # The new worker serves, with keep-alive as usual.
    wait_until(lambda: any(w["state"] == "ready" and w["pid"] != pid for w in gw.workers()),
               15, "the new worker")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as s:
        s.sendall(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
        response = _response(s)
        assert response.status_code == 200
        assert b"close" not in _connection_header(response)
