"""http/proxy_protocol.py: PROXY protocol v1 and v2 headers (issue 9, part 6)."""
from __future__ import annotations

import socket
import struct

import pytest

from dakia_prefork.http.proxy_protocol import MAX_V2_LENGTH, V2_SIGNATURE, ProxyHeaderError, \
    parse


def v2(command: int = 1, family: int = 1, protocol: int = 1, body: bytes | None = None,
       version: int = 2, length: int | None = None) -> bytes:
    if body is None:
        body = {1: socket.inet_pton(socket.AF_INET, "192.0.2.7")
                + socket.inet_pton(socket.AF_INET, "10.0.0.1") + struct.pack("!HH", 4711, 80),
                2: socket.inet_pton(socket.AF_INET6, "2001:db8::7")
                + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
                + struct.pack("!HH", 4711, 80),
                3: b"/run/client.sock".ljust(108, b"\0") + b"/run/gw.sock".ljust(108, b"\0"),
                0: b""}[family]
    size = len(body) if length is None else length
    return (V2_SIGNATURE + bytes([(version << 4) | command, (family << 4) | protocol])
            + struct.pack("!H", size) + body)


HTTP = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.parametrize("header,address", [
    (b"PROXY TCP4 192.0.2.7 10.0.0.1 4711 80\r\n", "192.0.2.7"),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 80\r\n", "2001:db8::7"),
    (b"PROXY TCP6 ::ffff:192.0.2.7 ::ffff:10.0.0.1 4711 80\r\n", "192.0.2.7"),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", None),
    (v2(), "192.0.2.7"),
    (v2(family=2), "2001:db8::7"),
    (v2(family=3), ""),
    (v2(command=0), None),                       # LOCAL: the proxy's own connection
    (v2(command=0, family=0, protocol=0), None),
    (v2(family=0, protocol=0), None),            # PROXY with AF_UNSPEC
    (v2(body=v2().removeprefix(v2()[:16]) + b"\x04\x00\x02hi"), "192.0.2.7"),  # TLVs
])
def test_valid_headers(header: bytes, address: str | None) -> None:
    assert parse(header + HTTP) == (len(header), address)
    # Split anywhere, the prefix is "need more", never an error.
    for cut in range(len(header)):
        assert parse(header[:cut]) is None, cut


@pytest.mark.parametrize("data", [
    HTTP,                                                     # plain HTTP, no header
    b"PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",                    # wrong v1 signature
    b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",                # family mismatch
    b"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                      # bare LF
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
    b"PROXY " + b"A" * 120,                                   # no CRLF within 107 bytes
    b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
    b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x0c" + b"\0" * 12,   # wrong v2 signature
    v2(version=1), v2(version=3),
    v2(command=2), v2(command=15),
    v2(family=4, body=b"\0" * 12), v2(protocol=3),
    v2(body=b"\0" * 8),                                       # INET addresses truncated
    v2(family=2, body=b"\0" * 12),
    v2(family=3, body=b"\0" * 100),
    v2(length=MAX_V2_LENGTH + 1, body=b""),
    b"\x16\x03\x01\x02\x00",                                  # a TLS ClientHello
    b"\x00",
])
def test_invalid_headers(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)


def test_an_early_byte_of_the_wrong_signature_is_refused_at_once() -> None:
    with pytest.raises(ProxyHeaderError):
        parse(b"PRO ")
    with pytest.raises(ProxyHeaderError):
        parse(b"\r\n\r\n\x01")
    with pytest.raises(ProxyHeaderError):
        parse(b"G")
    assert parse(b"") is None and parse(b"P") is None and parse(b"\r\n") is None
