"""Chunked framing through a running gateway, both directions, both engines.

A client's chunked body that breaks its framing is answered 400 and its connection closed;
when the head already went upstream, that upstream connection is closed, never reused, and
nothing after the break reaches it. An upstream's chunked response that breaks its framing
stops the body where it broke: the client's connection is cut (its head was already sent)
and the upstream connection is closed.

The upstream here is a raw socket server written for these tests: it records every byte it
receives on each connection and whether the gateway closed it, and answers with bytes the
test chooses, so it can send what no HTTP library would.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import h11
import pytest

from .harness import node, wait_until

_TIMEOUT = 10.0


@dataclass
class _Conn:
    data: bytearray = field(default_factory=bytearray)
    closed_by_peer: bool = False


class RawUpstream:
    """Accepts connections; answers each request whose head and body have fully arrived
    (Content-Length 0, or a chunked body ending in ``0\\r\\n\\r\\n``) with ``response``."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.conns: list[_Conn] = []
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            record = _Conn()
            with self._lock:
                self.conns.append(record)
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, record), daemon=True).start()

    def _serve(self, sock: socket.socket, record: _Conn) -> None:
        sock.settimeout(30)
        answered = 0
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    record.closed_by_peer = True
                    return
                record.data += data
                while answered < self._complete(bytes(record.data)):
                    sock.sendall(self.response)
                    answered += 1
        except OSError:
            return

    @staticmethod
    def _complete(data: bytes) -> int:
        """How many whole requests ``data`` holds (the gateway's framing, which re-chunks)."""
        count = 0
        while True:
            end = data.find(b"\r\n\r\n")
            if end == -1:
                return count
            head, rest = data[:end].lower(), data[end + 4:]
            if b"transfer-encoding: chunked" in head:
                last = rest.find(b"\r\n0\r\n\r\n")
                if not rest.startswith(b"0\r\n\r\n") and last == -1:
                    return count
                rest = rest[5:] if rest.startswith(b"0\r\n\r\n") else rest[last + 7:]
            count += 1
            data = rest

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def raw_upstreams():
    made: list[RawUpstream] = []

    def make(response: bytes) -> RawUpstream:
        up = RawUpstream(response)
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_HEAD = (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
_SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# (name, the body after the head). Each is broken; where the break hides a request, it is
# the one a lenient reader would pass on as the next one (_SMUGGLED).
_BAD_BODIES = [
    ("size of 2**64", b"10000000000000000\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"),
    ("17 digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("20 digits", b"00000000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("bare CR in an extension", b"5;a=b\r\r\nhello\r\n0\r\n\r\n"),
    ("bare CR after the size", b"5\rhello\r\n0\r\n\r\n"),
    ("bare LF after the size", b"5\nhello\r\n0\r\n\r\n"),
    ("bare LF in an extension", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ("whitespace after the size", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("tab after the size", b"5\t\r\nhello\r\n0\r\n\r\n"),
    ("whitespace after an extension", b"5;a=b \r\nhello\r\n0\r\n\r\n"),
    ("bad extension token", b"5;a@b\r\nhello\r\n0\r\n\r\n"),
    ("bad extension value", b"5;a=(b)\r\nhello\r\n0\r\n\r\n"),
    ("empty extension", b"5;\r\nhello\r\n0\r\n\r\n"),
    ("unterminated quoted value", b"5;a=\"b\r\nhello\r\n0\r\n\r\n"),
    ("missing CRLF after data", b"5\r\nhello0\r\n\r\n"),
    ("LF only after data", b"5\r\nhello\n0\r\n\r\n"),
    ("data longer than its size", b"3\r\nhello\r\n0\r\n\r\n"),
    ("0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("smuggling behind a 17-digit last chunk", b"00000000000000000\r\n\r\n" + _SMUGGLED),
    ("smuggling behind a bare-CR extension", b"0;x\r\r\n\r\n" + _SMUGGLED),
    ("smuggling in an overlong chunk", b"2\r\nab" + _SMUGGLED + b"\r\n0\r\n\r\n"),
]


def _exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data`` then read until the gateway closes: (bytes, closed by the gateway)."""
    with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        out = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return bytes(out), True
            except socket.timeout:
                return bytes(out), False
            if not chunk:
                return bytes(out), True
            out += chunk


@pytest.mark.parametrize("name,body", _BAD_BODIES, ids=[n for n, _ in _BAD_BODIES])
def test_a_broken_request_body_is_400_and_closes(engine, raw_upstreams, gateways, name, body):
    up = raw_upstreams(_OK)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    # A good request is pipelined behind the broken one: it must not be answered.
    answer, closed = _exchange(gw.port, _HEAD + body + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed, answer
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    # Whatever reached the upstream: no smuggled or following request, and its
    # connection was closed by the gateway.
    for conn in up.conns:
        wait_until(lambda: conn.closed_by_peer, _TIMEOUT, "the upstream connection to close")
        assert b"/smuggled" not in conn.data and b"/after" not in conn.data, bytes(conn.data)


@pytest.mark.parametrize("name,bad", [("17 digits", b"00000000000000003\r\nabc\r\n"),
                                      ("bare CR in an extension", b"3;a\r\rabc\r\n"),
                                      ("whitespace after the size", b"3 \r\nabc\r\n"),
                                      ("missing CRLF after data", b"3\r\nabcX")])
def test_a_body_that_breaks_after_its_head_went_upstream(engine, raw_upstreams, gateways,
                                                         name, bad):
    """The head and a good chunk reach the upstream first; then the break: the upstream
    connection is closed (never reused), the client gets 400, and the next client is
    served on a new upstream connection."""
    up = raw_upstreams(_OK)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=_TIMEOUT) as sock:
        sock.sendall(_HEAD + b"3\r\nabc\r\n")
        wait_until(lambda: up.conns and b"abc" in up.conns[0].data, _TIMEOUT,
                   "the head and first chunk upstream")
        sock.sendall(bad + b"0\r\n\r\n")
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), bytes(answer[:200])
    first = up.conns[0]
    wait_until(lambda: first.closed_by_peer, _TIMEOUT, "the upstream connection to close")
    assert not first.data.endswith(b"0\r\n\r\n"), "the broken body was completed upstream"
    # The next request goes out on a new connection and is answered.
    answer2, _ = _exchange(gw.port, b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer2.startswith(b"HTTP/1.1 200 "), answer2[:200]
    assert len(up.conns) == 2 and b"/next" in up.conns[1].data


_GOOD_BODIES = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;a=b\r\nhello\r\n0\r\n\r\n",
    b"5 ; a = \"q \\\" s\" ; b\r\nhello\r\n0;z\r\n\r\n",
    b"000000000000005\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
    b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("body", _GOOD_BODIES)
def test_good_chunked_bodies_pass_whole(engine, raw_upstreams, gateways, body):
    up = raw_upstreams(_OK)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer, _ = _exchange(gw.port, _HEAD.replace(b"Host: a", b"Host: a\r\nConnection: close")
                          + body)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    [conn] = up.conns
    upstream_body = bytes(conn.data).split(b"\r\n\r\n", 1)[1]
    # Re-chunked by the gateway, extensions and trailers dropped, the bytes unchanged.
    decoded = _dechunk(upstream_body)
    assert decoded == b"hello", upstream_body


def _dechunk(data: bytes) -> bytes:
    h = h11.Connection(h11.SERVER)
    h.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + data)
    out = bytearray()
    while True:
        event = h.next_event()
        if isinstance(event, h11.Data):
            out += event.data
        elif isinstance(event, h11.EndOfMessage):
            return bytes(out)
        elif event is h11.NEED_DATA:
            raise AssertionError(f"incomplete chunked body upstream: {data!r}")


_RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
_BAD_RESPONSES = [
    ("size of 2**64", b"10000000000000000\r\nxx\r\n0\r\n\r\n"),
    ("17 digits", b"00000000000000002\r\nxx\r\n0\r\n\r\n"),
    ("bare CR in an extension", b"2;a=b\r\r\nxx\r\n0\r\n\r\n"),
    ("bare LF after the size", b"2\nxx\r\n0\r\n\r\n"),
    ("whitespace after the size", b"2 \r\nxx\r\n0\r\n\r\n"),
    ("bad extension token", b"2;a,b\r\nxx\r\n0\r\n\r\n"),
    ("missing CRLF after data", b"2\r\nxxyy0\r\n\r\n"),
    ("bad trailer", b"0\r\nX-T : 1\r\n\r\n"),
]


@pytest.mark.parametrize("name,bad", _BAD_RESPONSES, ids=[n for n, _ in _BAD_RESPONSES])
def test_a_broken_chunked_response_is_cut(engine, raw_upstreams, gateways, name, bad):
    up = raw_upstreams(_RESPONSE_HEAD + b"4\r\ngood\r\n" + bad)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer, closed = _exchange(gw.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed, answer
    # The head went out with the good chunk; the body stops at the break, without its
    # last chunk, so no client can take it for a whole response.
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(answer)
    client.receive_data(b"")
    events = []
    with pytest.raises(h11.RemoteProtocolError):
        while True:
            event = client.next_event()
            events.append(event)
            assert not isinstance(event, h11.EndOfMessage), answer
    assert isinstance(events[0], h11.Response) and events[0].status_code == 200
    # What came through is a prefix of the data the upstream framed before the break (the
    # data of a chunk goes on as it arrives; the CRLF after it is checked next).
    assert b"goodxx".startswith(b"".join(e.data for e in events if isinstance(e, h11.Data)))
    # The upstream connection was closed and is not reused: the next request opens a new one.
    wait_until(lambda: up.conns[0].closed_by_peer, _TIMEOUT, "the upstream connection to close")
    up.response = _OK
    answer2, _ = _exchange(gw.port, b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer2.startswith(b"HTTP/1.1 200 "), answer2[:200]
    assert len(up.conns) == 2
