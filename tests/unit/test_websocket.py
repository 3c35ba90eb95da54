"""WebSocket upgrades without sockets: which requests are handshakes, how both engines pause
after one and hand over what follows, the heads that go upstream and back, and the tunnel
on in-memory streams (tests/unit/inmemory.py)."""
from __future__ import annotations

import time
from typing import Any

import gevent
import pytest

from dakia_prefork.http import engines, forwarding
from dakia_prefork.http.engines import policy
from dakia_prefork.http.events import CLOSED, END, ProtocolError, RequestHead, ResponseHead
from dakia_prefork.http import tunnel as tunnel_module
from dakia_prefork.http.connection import DownstreamConnection
from dakia_prefork.http.tunnel import (CLIENT_CLOSED, CLIENT_STALLED, CLOSED as CLOSED_BY_GATEWAY,
                                       IDLE, Tunnel)

from inmemory import (PEER, SEND_TIMEOUT, WRITE_TIMEOUT, MakeHarness, WatchedStream, engine,  # noqa: F401
                      get, make_harness, responses)

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")
FRAME = b"\x81\x85\x00\x00\x00\x00hello"       # a client's masked text frame
SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


@pytest.fixture(params=["h11", "httptools"])
def parsers(request: pytest.FixtureRequest) -> engines.Engine:
    return engines.select_engine(request.param)


def _drain(parser: Any) -> list[Any]:
    events = []
    while True:
        event = parser.next_event()
        if event is None:
            return events
        events.append(event)


# -- which requests are handshakes -------------------------------------------------------
@pytest.mark.parametrize(("method", "version", "upgrade", "connection", "body", "expected"), [
    (b"GET", b"1.1", [b"websocket"], [b"Upgrade"], False, True),
    (b"GET", b"1.1", [b"WebSocket"], [b"keep-alive, Upgrade"], False, True),
    (b"GET", b"1.1", [b"h2c, websocket"], [b"upgrade"], False, True),
    (b"GET", b"1.1", [b"websocket"], [b"keep-alive", b"upgrade"], False, True),
    (b"GET", b"1.1", [b"h2c"], [b"Upgrade"], False, False),
    (b"GET", b"1.1", [b"websocket"], None, False, False),
    (b"GET", b"1.1", [b"websocket"], [b"keep-alive"], False, False),
    (b"GET", b"1.1", [b"websocket"], [b"upgrade, close"], False, False),
    (b"GET", b"1.0", [b"websocket"], [b"Upgrade"], False, False),
    (b"POST", b"1.1", [b"websocket"], [b"Upgrade"], False, False),
    (b"GET", b"1.1", [b"websocket"], [b"Upgrade"], True, False),
])
def test_handshake_detection(method: bytes, version: bytes, upgrade: list[bytes],
                             connection: list[bytes] | None, body: bool,
                             expected: bool) -> None:
    assert policy.is_websocket_handshake(method, version, upgrade, connection,
                                         body) is expected


def test_both_engines_flag_the_handshake_and_only_it(parsers: engines.Engine) -> None:
    parser = parsers.request_parser()
    parser.feed(HANDSHAKE)
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.upgrade
    plain = parsers.request_parser()
    plain.feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")
    head = plain.next_event()
    assert isinstance(head, RequestHead) and not head.upgrade
    assert _drain(plain) == [END]


# -- the request parser pauses after a handshake -----------------------------------------
@pytest.mark.parametrize("split", [0, 1, 7, len(HANDSHAKE) - 1, len(HANDSHAKE) + 3])
def test_bytes_after_a_handshake_are_kept_for_the_tunnel(parsers: engines.Engine,
                                                         split: int) -> None:
    data = HANDSHAKE + FRAME + FRAME
    parser = parsers.request_parser()
    events: list[Any] = []
    for piece in (data[:split], data[split:split + 5], data[split + 5:]) if split else \
            [bytes([b]) for b in data]:
        parser.feed(piece)
        events += _drain(parser)
    assert [type(e) for e in events] == [RequestHead, type(END)]
    assert parser.upgraded() == FRAME + FRAME
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_a_refused_handshake_resumes_as_http(parsers: engines.Engine) -> None:
    parser = parsers.request_parser()
    parser.feed(HANDSHAKE + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\nGET /la")
    assert [type(e) for e in _drain(parser)] == [RequestHead, type(END)]   # paused
    parser.feed(b"st HTTP/1.1\r\nHost: a\r\n\r\n")
    assert _drain(parser) == []                       # still paused: nothing parsed
    parser.resume()
    events = _drain(parser)
    assert [e.target if isinstance(e, RequestHead) else e for e in events] == [
        b"/next", END, b"/last", END]
    parser.feed(b"")
    assert _drain(parser) == [CLOSED]


def test_an_eof_while_paused_is_seen_after_resume(parsers: engines.Engine) -> None:
    parser = parsers.request_parser()
    parser.feed(HANDSHAKE)
    _drain(parser)
    parser.feed(b"")
    assert _drain(parser) == []
    parser.resume()
    assert _drain(parser) == [CLOSED]
    broken = parsers.request_parser()
    broken.feed(HANDSHAKE + b"GET /half")
    _drain(broken)
    broken.feed(b"")
    broken.resume()
    with pytest.raises(ProtocolError) as error:
        broken.next_event()
    assert error.value.status == 400


# -- the response parser ends at a 101 ---------------------------------------------------
@pytest.mark.parametrize("split", [0, 1, 20, len(SWITCHED), len(SWITCHED) + 2])
def test_a_101_ends_the_response_and_keeps_what_follows(parsers: engines.Engine,
                                                        split: int) -> None:
    data = SWITCHED + b"\x81\x02hi"
    parser = parsers.response_parser(b"GET", websocket=True)
    events: list[Any] = []
    for piece in (data[:split], data[split:]) if split else [bytes([b]) for b in data]:
        if piece:
            parser.feed(piece)
        events += _drain(parser)
    assert len(events) == 1 and isinstance(events[0], ResponseHead)
    head = events[0]
    assert (head.status, head.body, head.keep_alive) == (101, "none", False)
    assert (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in head.headers
    assert parser.upgraded() == b"\x81\x02hi"


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
])
def test_a_101_to_another_protocol_is_a_broken_upstream(parsers: engines.Engine,
                                                        head: bytes) -> None:
    parser = parsers.response_parser(b"GET", websocket=True)
    parser.feed(head)
    with pytest.raises(ProtocolError) as error:
        parser.next_event()
    assert error.value.status == 502


def test_a_101_unasked_is_a_broken_upstream(parsers: engines.Engine) -> None:
    parser = parsers.response_parser(b"GET")
    parser.feed(SWITCHED)
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_a_handshake_may_get_an_ordinary_response(parsers: engines.Engine) -> None:
    parser = parsers.response_parser(b"GET", websocket=True)
    parser.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    events = _drain(parser)
    assert isinstance(events[0], ResponseHead) and events[0].status == 403
    assert events[1:] == [b"no", END]


# -- the heads forwarded ---------------------------------------------------------------------
def _head(engine_: engines.Engine, raw: bytes) -> RequestHead:
    parser = engine_.request_parser()
    parser.feed(raw)
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    return head


def test_the_handshake_goes_upstream_with_its_upgrade(parsers: engines.Engine) -> None:
    head = _head(parsers, HANDSHAKE)
    sent = forwarding.upstream_head(head, head, b"192.0.2.7", b"http", b"node")
    assert sent == forwarding.upstream_head_reference(head, head, b"192.0.2.7", b"http",
                                                      b"node")
    lines = sent.split(b"\r\n")
    assert lines.count(b"connection: upgrade") == 1 and lines.count(b"upgrade: websocket") == 1
    assert b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==" in lines
    assert b"Connection: Upgrade" not in lines and b"Upgrade: websocket" not in lines


def test_other_upgrades_lose_their_hop_by_hop_headers(parsers: engines.Engine) -> None:
    head = _head(parsers, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n"
                 b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMA\r\n\r\n")
    for sent in (forwarding.upstream_head(head, head, b"", b"http", b"node"),
                 forwarding.upstream_head_reference(head, head, b"", b"http", b"node")):
        lowered = sent.lower()
        assert b"upgrade" not in lowered and b"http2-settings" not in lowered


# -- the exchange and the tunnel, on in-memory streams -----------------------------------
def test_a_101_becomes_a_tunnel_with_what_both_sides_sent_early(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    upstream = h.upstream(SWITCHED + b"UP1", b"UP2")
    client = h.serve(get(target=b"/api/ws", headers=HANDSHAKE.split(b"\r\n", 2)[2][:-2])
                     + b"C1", b"C2")
    head, rest = bytes(client.written).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nconnection: upgrade\r\nupgrade: websocket\r\n" in head + b"\r\n"
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    assert rest == b"UP1UP2"
    sent_head, sent_rest = bytes(upstream.written).split(b"\r\n\r\n", 1)
    assert b"\r\nupgrade: websocket" in sent_head
    assert sent_rest == b"C1C2"
    assert upstream.closed
    assert h.log.lines == [(101, 6)]          # logged once the tunnel ended
    assert not h.ctx.tunnels


def test_a_refused_handshake_leaves_the_connection_serving_http(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    h.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    handshake = get(target=b"/api/ws", headers=HANDSHAKE.split(b"\r\n", 2)[2][:-2])
    client = h.serve(handshake + get())       # pipelined behind the handshake
    assert [(r.status, r.body) for r in responses(client.written, b"GET", b"GET")] == [
        (403, b"no"), (200, b"ok")]


def test_the_tunnel_ends_with_the_first_side_that_closes(make_harness: MakeHarness) -> None:
    h = make_harness()
    conn, client = h.connection(b"from client")
    upstream = h.upstream(b"from upstream")
    conn.greenlet = None
    tunnel = Tunnel(conn, upstream, 60.0, WRITE_TIMEOUT)
    assert tunnel.run(b"early ", b"") == CLIENT_CLOSED
    assert bytes(upstream.written) == b"early from client"
    assert bytes(client.written) == b"from upstream"
    assert (tunnel.to_upstream, tunnel.to_client) == (17, 13)
    assert conn.deadline == 0.0


def _blocking_tunnel(make_harness: MakeHarness) -> tuple[Any, Tunnel]:
    """A tunnel whose two sides send nothing and never close (each recv sleeps)."""
    h = make_harness()
    conn, _client = h.connection(lambda: gevent.sleep(30) or b"")
    upstream = h.upstream(lambda: gevent.sleep(30) or b"")
    conn.greenlet = gevent.getcurrent()
    return conn, Tunnel(conn, upstream, 60.0, WRITE_TIMEOUT)


def test_close_ends_a_tunnel_from_outside(make_harness: MakeHarness) -> None:
    conn, tunnel = _blocking_tunnel(make_harness)
    gevent.spawn_later(0.05, tunnel.close)
    started = time.monotonic()
    assert tunnel.run(b"", b"") == CLOSED_BY_GATEWAY
    assert time.monotonic() - started < 5
    assert conn.deadline == 0.0


def test_the_idle_deadline_ends_a_quiet_tunnel(make_harness: MakeHarness) -> None:
    """What the worker's sweeper does when the deadline passes (connection.expire_waits)."""
    conn, tunnel = _blocking_tunnel(make_harness)

    def sweep() -> None:
        assert conn.deadline > time.monotonic() + 59      # set by run: now + idle
        conn.deadline = time.monotonic() - 1               # as if 60 s had passed
        conn.expire()
    gevent.spawn_later(0.05, sweep)
    assert tunnel.run(b"", b"") == IDLE
    assert conn.deadline == 0.0


def test_each_write_of_the_tunnel_is_bounded_by_its_side_s_write_timeout(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    conn, client = h.connection(b"from client")
    upstream = h.upstream(b"from upstream")
    conn.greenlet = None
    assert Tunnel(conn, upstream, 60.0, WRITE_TIMEOUT).run(b"", b"") == CLIENT_CLOSED
    # While a write waits, the deadline is the write's (the seconds left, rounded); while
    # a read waits, the idle one.
    assert ("send", round(SEND_TIMEOUT)) in client.waits
    assert ("send", round(WRITE_TIMEOUT)) in upstream.waits
    assert ("recv", 60) in client.waits and ("recv", 60) in upstream.waits


class _NotReading(WatchedStream):
    """A client that keeps its connection open and never reads: every send waits."""

    def send(self, data: bytes, /) -> int:
        gevent.sleep(30)
        return 0

    def sendall(self, data: bytes | memoryview, /) -> None:
        self.send(bytes(data))


def test_a_client_that_stops_reading_ends_the_tunnel_at_send_timeout(
        make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's pings would keep the idle deadline moving; the stuck write does not."""
    h = make_harness()
    stream = _NotReading([lambda: gevent.sleep(30) or b""], h.left)
    conn = h.current = DownstreamConnection(h.ctx, stream, PEER, h.listener)
    conn.greenlet = gevent.getcurrent()
    upstream = h.upstream(b"a message the client will not read",
                          lambda: gevent.sleep(30) or b"")
    tunnel = Tunnel(conn, upstream, 60.0, WRITE_TIMEOUT)
    real = time.monotonic

    def sweep() -> None:
        left = conn.deadline - real()
        assert SEND_TIMEOUT - 1 < left <= SEND_TIMEOUT       # the write's, not idle's 60
        monkeypatch.setattr(tunnel_module, "_monotonic", lambda: real() + SEND_TIMEOUT + 1)
        conn.deadline = real() - 1                           # as if send_timeout had passed
        conn.expire()
    gevent.spawn_later(0.05, sweep)
    assert tunnel.run(b"", b"") == CLIENT_STALLED
    assert conn.deadline == 0.0
