"""The upstream HTTP/1.1 client (http/client.py) on in-memory streams, under both engines:
how each way a node fails maps to what the exchange does next (502, 504, replay)."""
from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest

from dakia_prefork.http import client
from dakia_prefork.http.engines import Engine, select_engine
from dakia_prefork.http.errors import LookupTimeout, StaleConnection, UpstreamFailed
from dakia_prefork.http.memory import MemoryStream, Step
from dakia_prefork.http.upstream import Node, Resolver, UpstreamConnection
from dakia_prefork.message.heads import END, ResponseHead
from inmemory import engine, ok, upstream_connection

__all__ = ["engine"]      # a fixture, used by name

NODE = Node(("tcp", "10.0.0.1", 80))


@pytest.fixture
def parsers(engine: str) -> Engine:
    return select_engine(engine)


def _conn(*reads: Step) -> tuple[UpstreamConnection, MemoryStream]:
    stream = MemoryStream(reads)
    return upstream_connection(stream, NODE), stream


def _reader(parsers: Engine, *reads: Step, method: bytes = b"GET",
            replayable: bool = False) -> client.ResponseReader:
    conn, _stream = _conn(*reads)
    return client.ResponseReader(conn, parsers, method, 65536, replayable)


def _failure(reader: client.ResponseReader) -> UpstreamFailed:
    with pytest.raises(UpstreamFailed) as info:
        while reader.next_event() is not END:
            pass
    return info.value


# -- ResponseReader ---------------------------------------------------------------------------
def test_reader_yields_head_body_end(parsers: Engine) -> None:
    reader = _reader(parsers, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", b"lo")
    head = reader.next_event()
    assert isinstance(head, ResponseHead) and head.status == 200 and head.keep_alive
    body = b""
    while (event := reader.next_event()) is not END:
        assert isinstance(event, bytes)
        body += event
    assert body == b"hello" and not reader.parser.trailing_data


def test_pending_is_none_until_filled(parsers: Engine) -> None:
    reader = _reader(parsers, ok())
    assert reader.pending() is None
    reader.fill()
    assert isinstance(reader.pending(), ResponseHead)


def test_final_head_skips_informational_heads(parsers: Engine) -> None:
    reader = _reader(parsers, b"HTTP/1.1 100 Continue\r\n\r\n",
                     b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok())
    assert reader.final_head().status == 200


def test_head_response_has_no_body(parsers: Engine) -> None:
    reader = _reader(parsers, b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", method=b"HEAD")
    head = reader.next_event()
    assert isinstance(head, ResponseHead) and head.body == "none"
    assert reader.next_event() is END


def test_timeout_is_504(parsers: Engine) -> None:
    failure = _failure(_reader(parsers, TimeoutError()))
    assert failure.status == 504 and failure.sent


def test_reset_is_502(parsers: Engine) -> None:
    failure = _failure(_reader(parsers, ConnectionResetError()))
    assert failure.status == 502 and failure.sent


@pytest.mark.parametrize("data", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
], ids=["not-http", "bad-length", "bad-header", "bad-chunk"])
def test_invalid_bytes_are_502(parsers: Engine, data: bytes) -> None:
    assert _failure(_reader(parsers, data)).status == 502


@pytest.mark.parametrize("reads", [(), (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel",)],
                         ids=["before-the-head", "inside-the-body"])
def test_eof_on_a_fresh_connection_is_502(parsers: Engine, reads: tuple[bytes, ...]) -> None:
    assert _failure(_reader(parsers, *reads)).status == 502


@pytest.mark.parametrize("first", [b"", ConnectionResetError()], ids=["eof", "reset"])
def test_reused_connection_closed_before_any_byte_is_stale(parsers: Engine,
                                                           first: Step) -> None:
    reader = _reader(parsers, first, replayable=True)
    with pytest.raises(StaleConnection):
        reader.next_event()


def test_reused_connection_is_not_stale_once_bytes_came(parsers: Engine) -> None:
    reader = _reader(parsers, b"HTTP/1.1 200", b"", replayable=True)
    assert _failure(reader).status == 502
    assert not reader.replayable


def test_drain_within_the_limit_leaves_a_reusable_connection(parsers: Engine) -> None:
    reader = _reader(parsers, ok(b"x" * 10))
    reader.final_head()
    assert reader.drain(10)


@pytest.mark.parametrize("reads", [
    (ok(b"x" * 11),),                                   # over the limit
    (ok(b"x" * 5) + b"HTTP/1.1 200 OK\r\n",),           # bytes after the response
    (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab", ConnectionResetError()),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab", TimeoutError()),
], ids=["over-limit", "trailing-data", "reset", "timeout"])
def test_drain_refuses_what_cannot_be_reused(parsers: Engine, reads: tuple[Step, ...]) -> None:
    reader = _reader(parsers, *reads)
    reader.final_head()
    assert not reader.drain(10)


def test_a_passed_deadline_is_504_without_reading(parsers: Engine) -> None:
    conn, stream = _conn(ok())
    reader = client.ResponseReader(conn, parsers, b"GET", 65536, deadline=0.0)
    with pytest.raises(UpstreamFailed) as info:
        reader.next_event()
    assert info.value.status == 504 and stream.recv_calls == 0


# -- request ----------------------------------------------------------------------------------
def test_request_sends_head_and_reads_the_response(parsers: Engine) -> None:
    conn, stream = _conn(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"ok")
    reader = client.request(conn, parsers, b"GET", b"/healthz", [(b"host", b"n")], 5.0)
    assert stream.written == b"GET /healthz HTTP/1.1\r\nhost: n\r\n\r\n"
    assert reader.final_head().status == 200 and reader.drain(10)


@pytest.mark.parametrize("method, body, framing", [
    (b"POST", b"abc", b"content-length: 3\r\n"),
    (b"POST", b"", b"content-length: 0\r\n"),
    (b"GET", b"", b""),
])
def test_request_frames_its_body(parsers: Engine, method: bytes, body: bytes,
                                 framing: bytes) -> None:
    conn, stream = _conn(ok())
    client.request(conn, parsers, method, b"/", [(b"host", b"n")], 5.0, body=body)
    assert stream.written == method + b" / HTTP/1.1\r\nhost: n\r\n" + framing + b"\r\n" + body


def test_request_timeout_bounds_the_whole_exchange(parsers: Engine) -> None:
    conn, stream = _conn(b"HTTP/1.1 200 OK\r\n", b"content-length: 2\r\n\r\n", b"o", b"k")
    reader = client.request(conn, parsers, b"GET", b"/", [(b"host", b"n")], 5.0)
    while reader.next_event() is not END:
        pass
    first, *later = stream.timeouts
    lefts = [left for left in later if left is not None]
    assert first == 5.0 and len(lefts) == 4       # every receive gets what is left
    assert all(0 < left <= 5.0 for left in lefts) and lefts == sorted(lefts, reverse=True)


def test_request_with_no_time_left_is_504(parsers: Engine) -> None:
    conn, stream = _conn(ok())
    reader = client.request(conn, parsers, b"GET", b"/", [(b"host", b"n")], 0.0)
    with pytest.raises(UpstreamFailed) as info:
        reader.next_event()
    assert info.value.status == 504 and stream.recv_calls == 0


# -- send -------------------------------------------------------------------------------------
@pytest.mark.parametrize("error, replayable, outcome", [
    (TimeoutError(), False, 504),
    (TimeoutError(), True, 504),
    (BrokenPipeError(), False, 502),
    (BrokenPipeError(), True, StaleConnection),
], ids=["timeout", "timeout-reused", "broken", "broken-reused"])
def test_send_failure_closes_and_maps(error: OSError, replayable: bool,
                                      outcome: int | type[Exception]) -> None:
    conn, stream = _conn()
    stream.fail_send = error
    with pytest.raises(Exception) as info:
        client.send(conn, b"GET / HTTP/1.1\r\n\r\n", replayable)
    if isinstance(outcome, int):
        assert isinstance(info.value, UpstreamFailed) and info.value.status == outcome
        assert info.value.sent
    else:
        assert isinstance(info.value, outcome)
    assert stream.closed


def test_send_of_nothing_writes_nothing() -> None:
    conn, stream = _conn()
    stream.fail_send = BrokenPipeError()
    client.send(conn, b"")
    assert stream.written == b"" and not stream.closed


# -- open_upstream ----------------------------------------------------------------------------
def _refusing(error: BaseException) -> Callable[[Node, float, Resolver | None], socket.socket]:
    def open_connection(node: Node, timeout: float, resolver: Resolver | None) -> socket.socket:
        raise error
    return open_connection


@pytest.mark.parametrize("error, status", [
    (TimeoutError(), 504),
    (LookupTimeout(), 504),
    (socket.gaierror(-2, "Name or service not known"), 502),
    (ssl.SSLError(1, "certificate verify failed"), 502),
    (ConnectionRefusedError(111, "refused"), 502),
], ids=["timeout", "lookup-timeout", "name", "tls", "refused"])
def test_connect_failures_are_not_sent(monkeypatch: pytest.MonkeyPatch, error: BaseException,
                                       status: int) -> None:
    monkeypatch.setattr(client, "open_connection", _refusing(error))
    for node in (NODE, Node(("tcp", "api.internal", 80))):      # an IP, a name (timer)
        with pytest.raises(UpstreamFailed) as info:
            client.open_upstream(node, 1.0, None)
        assert info.value.status == status and not info.value.sent


def test_open_upstream_keys_the_connection_by_node(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = MemoryStream()

    def open_connection(node: Node, timeout: float, resolver: Resolver | None) -> MemoryStream:
        assert (node, timeout) == (NODE, 2.5)
        return stream

    monkeypatch.setattr(client, "open_connection", open_connection)
    conn = client.open_upstream(NODE, 2.5, None)
    assert conn.sock is stream and conn.key == NODE.pool_key and conn.tls is None
