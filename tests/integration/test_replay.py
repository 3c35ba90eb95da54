"""No replay of a request that is not idempotent (issue 9, part 10).

The upstream here answers the first request of each connection and, on any later request of
the same connection, reads it whole and closes without a word: from the gateway's side, a
reused pooled connection that failed after the request went out. That is exactly the case
where the upstream may have acted on the request, so only idempotent methods may be sent
again (on a fresh connection); a POST or PATCH reaches the upstream once and the client
gets 502.
"""
from __future__ import annotations

import socket
import threading
from typing import Callable

import pytest

from .harness import Gateway, Received, Upstream, node, read_responses


class ClosesReused:
    """A handler: answer the first request of a connection, close on the later ones."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Received, sock: socket.socket) -> bytes | None:
        with self.lock:
            count = self.seen[request.connection_id] = self.seen.get(request.connection_id,
                                                                     0) + 1
        if count > 1:
            return None                    # read it, then close: the harness closes
        body = f"{request.method} {request.target} on {request.connection_id}".encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def _one(port: int, raw: bytes, method: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        (response, body), = _read(s, method)
        return response.status_code, body


def _read(sock: socket.socket, method: bytes) -> list:
    # read_responses sends its own request through h11 to drive the state machine; it
    # only needs the method to know whether a body follows.
    return read_responses(sock, 1, [method])


def _send(port: int, method: str, target: str, extra: str = "") -> tuple[int, bytes]:
    raw = f"{method} {target} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n"
    return _one(port, raw.encode(), method.encode())


@pytest.fixture
def setup(upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway],
          engine: str) -> tuple[Upstream, Gateway]:
    upstream = upstreams(ClosesReused())
    # One worker, one node: the pooled connection is the one the next request reuses.
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine)
    return upstream, gw


def _received(upstream: Upstream, target: str) -> list[Received]:
    return [r for r in upstream.received if r.target == target]


@pytest.mark.parametrize("method,extra", [
    ("POST", ""),                                # no body at all
    ("POST", "content-length: 0\r\n"),           # an empty body
    ("PATCH", ""),
])
def test_a_non_idempotent_request_is_never_sent_twice(setup, method: str, extra: str) -> None:
    upstream, gw = setup
    status, _ = _send(gw.port, "GET", "/warm")   # leaves a connection in the pool
    assert status == 200
    status, body = _send(gw.port, method, "/once", extra)
    assert status == 502, body
    got = _received(upstream, "/once")
    assert [r.method for r in got] == [method], got
    # The gateway is fine afterwards, on a fresh connection.
    status, _ = _send(gw.port, "GET", "/after")
    assert status == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE", "PUT", "TRACE"])
def test_an_idempotent_request_is_sent_again_on_a_fresh_connection(setup, method: str) -> None:
    upstream, gw = setup
    status, _ = _send(gw.port, "GET", "/warm")
    assert status == 200
    extra = "content-length: 0\r\n" if method == "PUT" else ""
    status, body = _send(gw.port, method, "/again", extra)
    assert status == 200, body
    got = _received(upstream, "/again")
    assert [r.method for r in got] == [method, method], got
    first, second = got
    assert first.connection_id != second.connection_id
    if method != "HEAD":
        assert body == f"{method} /again on {second.connection_id}".encode()
