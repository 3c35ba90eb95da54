"""What we write by hand must be exactly what h11 accepts."""
from __future__ import annotations

import h11

from dakia_prefork.message import wire


def _server_parse(data: bytes) -> list:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    events = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            return events


def _client_parse(data: bytes, method: bytes = b"GET") -> list:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    events = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            return events


def test_request_head_with_chunked_body_is_valid_for_h11():
    head = wire.request_head(b"POST", b"/a?b=c", [(b"host", b"example.com"),
                                                  (b"x-empty", b""),
                                                  (b"transfer-encoding", b"chunked")])
    data = head + wire.chunk(b"hello") + wire.chunk(b"\r\n\x00binary") + wire.LAST_CHUNK
    events = _server_parse(data)
    assert events[0].method == b"POST" and events[0].target == b"/a?b=c"
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"hello\r\n\x00binary"
    assert isinstance(events[-1], h11.EndOfMessage)


def test_response_head_and_simple_response_are_valid_for_h11():
    data = wire.response_head(404, b"", [(b"content-length", b"3")]) + b"abc"
    events = _client_parse(data)
    assert events[0].status_code == 404 and events[0].reason == b"Not Found"
    assert events[1].data == b"abc"
    events = _client_parse(wire.simple_response(502, b"bad\n", close=True,
                                                extra=[(b"content-type", b"text/html")]))
    assert events[0].status_code == 502
    assert (b"connection", b"close") in events[0].headers
    assert [v for k, v in events[0].headers if k == b"content-type"] == [b"text/html"]


def test_unknown_status_gets_a_reason():
    events = _client_parse(wire.response_head(599, b"", [(b"content-length", b"0")]))
    assert events[0].status_code == 599 and events[0].reason


def test_end_to_end_drops_hop_by_hop_and_connection_named_headers():
    headers = [(b"connection", b"close, X-Custom"), (b"x-custom", b"1"), (b"keep-alive", b"5"),
               (b"transfer-encoding", b"chunked"), (b"content-length", b"3"),
               (b"upgrade", b"h2c"), (b"te", b"trailers"), (b"trailer", b"x"),
               (b"proxy-connection", b"keep-alive"), (b"x-keep", b"yes")]
    assert wire.end_to_end(headers) == [(b"x-keep", b"yes")]
