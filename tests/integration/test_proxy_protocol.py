"""PROXY protocol v1 and v2 on a listener with ``proxy_protocol: true``, through the
running gateway (issue 9, part 6).

The test client plays the load balancer: it writes the PROXY header, then HTTP. The address
in a valid header is the client's (X-Forwarded-For upstream, ip_restriction, the access
log); a connection that does not start with a valid header is closed without an answer;
LOCAL and UNKNOWN headers are valid and leave the connection's own address.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import time
from typing import Callable

import pytest

from .harness import Gateway, Upstream, free_port, node, read_responses, wait_until

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HTTP = b"GET /p HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"


def v2(command: int = 1, family: int = 1, body: bytes | None = None) -> bytes:
    if body is None:
        body = {1: socket.inet_aton("192.0.2.7") + socket.inet_aton("127.0.0.1")
                + struct.pack("!HH", 4711, 80),
                2: socket.inet_pton(socket.AF_INET6, "2001:db8::7")
                + socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 4711, 80),
                0: b""}[family]
    return SIG + bytes([0x20 | command, (family << 4) | 1]) + struct.pack("!H", len(body)) + body


def _exchange(port: int, *pieces: bytes, half_close: bool = False,
              timeout: float = 10) -> tuple[bytes, float]:
    """Send ``pieces`` (one write each), read until the gateway closes: (what came back,
    how long that took)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for piece in pieces:
            s.sendall(piece)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data, time.monotonic() - started


def _status(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data[9:12])


@pytest.fixture
def proxied(upstreams: Callable[..., Upstream], gateways: Callable[..., Gateway],
            engine: str) -> tuple[Upstream, Gateway, int]:
    """A gateway whose first listener reads PROXY headers and second does not."""
    upstream = upstreams(name="app")
    plain = free_port()
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                  start=False, extra={"limits": {"client_header_timeout": 1}},
                  gateway={"interceptors": [{"name": "ip_restriction",
                                             "config": {"deny": ["198.51.100.0/24"]}}]})
    binds = gw.config["gateways"][0]["bind_addresses"]
    binds[0]["proxy_protocol"] = True
    binds.append({"host": "127.0.0.1", "port": plain})
    gw.start()
    return upstream, gw, plain


def _forwarded_for(upstream: Upstream) -> str | None:
    return upstream.received[-1].header("x-forwarded-for")


@pytest.mark.parametrize("header,client", [
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n", "192.0.2.7"),
    (b"PROXY TCP6 2001:db8::7 ::1 4711 80\r\n", "2001:db8::7"),
    (v2(), "192.0.2.7"),
    (v2(family=2), "2001:db8::7"),
    (v2(body=v2()[16:] + b"\x04\x00\x03abc"), "192.0.2.7"),         # with a TLV
    # Valid headers that say "use the connection's addresses": the proxy's own checks.
    (b"PROXY UNKNOWN\r\n", "127.0.0.1"),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", "127.0.0.1"),
    (v2(command=0), "127.0.0.1"),                                  # LOCAL
    (v2(command=0, family=0), "127.0.0.1"),
    (v2(family=0), "127.0.0.1"),                                   # UNKNOWN family
])
def test_a_valid_header_names_the_client(proxied, header: bytes, client: str) -> None:
    upstream, gw, _plain = proxied
    data, _ = _exchange(gw.port, header + HTTP)              # header and HTTP in one write
    assert _status(data) == 200
    assert _forwarded_for(upstream) == client
    data, _ = _exchange(gw.port, header, HTTP)               # apart
    assert _status(data) == 200
    assert _forwarded_for(upstream) == client


def test_a_header_sent_byte_by_byte_and_keep_alive(proxied) -> None:
    upstream, gw, _plain = proxied
    header = b"PROXY TCP4 192.0.2.8 127.0.0.1 4711 80\r\n"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        for i in range(len(header)):
            s.sendall(header[i:i + 1])
        s.sendall(b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\n")
        assert [r.status_code for r, _ in read_responses(s, 2)] == [200, 200]
    assert [(r.target, r.header("x-forwarded-for")) for r in upstream.received] == [
        ("/1", "192.0.2.8"), ("/2", "192.0.2.8")]
    # The access log names the client too.
    log = os.path.join(gw.tmp, "access.log")
    wait_until(lambda: os.path.exists(log) and "192.0.2.8 " in open(log).read(), 5,
               "the access-log line")


def test_the_address_reaches_ip_restriction(proxied) -> None:
    _upstream, gw, _plain = proxied
    data, _ = _exchange(gw.port, b"PROXY TCP4 198.51.100.9 127.0.0.1 4711 80\r\n" + HTTP)
    assert _status(data) == 403
    data, _ = _exchange(gw.port, v2(body=socket.inet_aton("198.51.100.9") * 2
                                    + struct.pack("!HH", 1, 2)) + HTTP)
    assert _status(data) == 403


@pytest.mark.parametrize("pieces", [
    [HTTP],                                                   # no header at all
    [b"PROXX TCP4 192.0.2.7 127.0.0.1 4711 80\r\n" + HTTP],   # wrong v1 signature
    [b"PROXY TCP5 192.0.2.7 127.0.0.1 4711 80\r\n" + HTTP],
    [b"PROXY TCP4 192.0.2.7 127.0.0.1 4711\r\n" + HTTP],
    [b"PROXY TCP4 2001:db8::7 127.0.0.1 4711 80\r\n" + HTTP],
    [b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\n" + HTTP],     # bare LF
    [b"PROXY " + b"A" * 200 + b"\r\n" + HTTP],                # longer than v1 allows
    [b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + b"\0" * 12 + HTTP],   # wrong v2 signature
    [SIG + b"\x31\x11\x00\x0c" + b"\0" * 12 + HTTP],          # v2, version 3
    [SIG + b"\x22\x11\x00\x0c" + b"\0" * 12 + HTTP],          # v2, command 2
    [SIG + b"\x21\x51\x00\x0c" + b"\0" * 12 + HTTP],          # v2, family 5
    [SIG + b"\x21\x11\x00\x08" + b"\0" * 8 + HTTP],           # v2, addresses truncated
    [SIG + b"\x21\x11\xff\xff" + HTTP],                       # v2, far too long
    [b"\x16\x03\x01\x00\xa5\x01\x00\x00"],                    # a TLS ClientHello
])
def test_an_invalid_header_is_closed_without_an_answer(proxied, pieces: list[bytes]) -> None:
    upstream, gw, _plain = proxied
    data, took = _exchange(gw.port, *pieces)
    assert data == b""
    assert took < 1.0, took                                   # at once, not at a timeout
    assert upstream.received == []


@pytest.mark.parametrize("partial", [
    b"PROXY TCP4 192.0.2.7 127.0",                            # truncated v1
    SIG[:7],                                                  # truncated v2 signature
    v2()[:20],                                                # truncated v2 addresses
    b"",                                                      # nothing at all
])
def test_a_truncated_header_is_closed(proxied, partial: bytes) -> None:
    upstream, gw, _plain = proxied
    # The client stops: closed at client_header_timeout (1 s here), without an answer.
    data, took = _exchange(gw.port, partial)
    assert data == b"" and 0.9 <= took < 3.0, (data, took)
    # The client ends its side: closed at once.
    data, took = _exchange(gw.port, partial, half_close=True)
    assert data == b"" and took < 1.0, (data, took)
    assert upstream.received == []


def test_only_the_listener_that_asks_reads_a_header(proxied) -> None:
    upstream, gw, plain = proxied
    data, _ = _exchange(plain, HTTP)
    assert _status(data) == 200 and _forwarded_for(upstream) == "127.0.0.1"
    data, _ = _exchange(plain, b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n" + HTTP)
    assert _status(data) == 400                             # on this one it is not HTTP
    # A second header after the first is not HTTP either.
    data, _ = _exchange(gw.port, v2(), b"PROXY TCP4 192.0.2.9 127.0.0.1 1 2\r\n" + HTTP)
    assert _status(data) == 400


def test_with_real_ip_the_proxied_address_is_the_peer(upstreams, gateways, engine) -> None:
    """PROXY names the balancer's peer; real_ip then trusts it (or not) as any peer."""
    upstream = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                  start=False, gateway={"real_ip": {"trusted_proxies": ["10.0.0.0/8"]}})
    gw.config["gateways"][0]["bind_addresses"][0]["proxy_protocol"] = True
    gw.start()
    xff = b"GET /p HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 6.6.6.6, 203.0.113.9\r\n" \
          b"connection: close\r\n\r\n"
    data, _ = _exchange(gw.port, b"PROXY TCP4 10.0.0.5 127.0.0.1 4711 80\r\n" + xff)
    assert _status(data) == 200
    assert _forwarded_for(upstream) == "203.0.113.9, 10.0.0.5"
    data, _ = _exchange(gw.port, b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n" + xff)
    assert _status(data) == 200
    assert _forwarded_for(upstream) == "192.0.2.7"


def test_turning_it_on_is_a_reload(upstreams, gateways, engine) -> None:
    upstream = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine)
    data, _ = _exchange(gw.port, HTTP)
    assert _status(data) == 200
    gw.config["gateways"][0]["bind_addresses"][0]["proxy_protocol"] = True
    gw.write_config()
    gw.signal(signal.SIGHUP)

    def served_with_header() -> bool:
        got, _ = _exchange(gw.port, v2() + HTTP)
        return got.startswith(b"HTTP/1.1 200 ") and _forwarded_for(upstream) == "192.0.2.7"
    wait_until(served_with_header, 10, "the reload to reach the worker", interval=0.2)
    data, _ = _exchange(gw.port, HTTP)
    assert data == b""
