"""Behaviour of each parser engine on its own: fields, framing, limits, pipelining, EOF,
streaming, and how an engine is chosen."""
from __future__ import annotations

import sys
from typing import Any

import pytest

from dakia_prefork.http import engines
from dakia_prefork.http.engines import H11Engine, HttptoolsEngine, available_engines, \
    httptools_engine, select_engine
from dakia_prefork.http.events import CLOSED, END, ProtocolError, RequestHead, RequestParser, \
    ResponseHead, ResponseParser

try:  # see test_parser_differential.py
    from . import parser_corpus as corpus
except ImportError:
    import parser_corpus as corpus  # type: ignore[no-redef]


@pytest.fixture(params=["h11", "httptools"])
def engine(request: pytest.FixtureRequest) -> engines.Engine:
    return select_engine(request.param)


Parser = RequestParser | ResponseParser


def _events(parser: Parser, *chunks: bytes, eof: bool = False) -> list[Any]:
    """Feed ``chunks`` (then EOF if asked) and take every event available.

    Typed Any: the tests read head fields straight off the events they expect.
    """
    for chunk in chunks:
        parser.feed(chunk)
    if eof:
        parser.feed(b"")
    out: list[Any] = []
    while (event := parser.next_event()) is not None:
        out.append(event)
        if event is CLOSED:
            break
    return out


def _head(engine: engines.Engine, raw: bytes) -> RequestHead:
    head = _events(engine.request_parser(), raw)[0]
    assert isinstance(head, RequestHead)
    return head


def _error(parser: Parser, *chunks: bytes, eof: bool = True) -> int:
    """The status of the ProtocolError that feeding ``chunks`` (and EOF) ends with."""
    with pytest.raises(ProtocolError) as info:
        _events(parser, *chunks, eof=eof)
    status: int = info.value.status
    return status


# --- request fields ---------------------------------------------------------------------------

@pytest.mark.parametrize(("version", "connection", "expected"), [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Keep-Alive, Close", False),
    (b"1.1", b"upgrade", True),
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"keep-alive, close", False),
])
def test_keep_alive(engine: engines.Engine, version: bytes, connection: bytes | None,
                    expected: bool) -> None:
    raw = b"GET / HTTP/" + version + b"\r\nHost: a\r\n"
    if connection is not None:
        raw += b"Connection: " + connection + b"\r\n"
    assert _head(engine, raw + b"\r\n").keep_alive is expected


def test_keep_alive_reads_every_connection_header(engine: engines.Engine) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n"
    assert _head(engine, raw).keep_alive is False


@pytest.mark.parametrize(("version", "expect", "expected"), [
    (b"1.1", b"100-continue", True),
    (b"1.1", b"100-Continue", True),
    (b"1.1", b"foo, 100-continue", True),
    (b"1.1", b"something-else", False),
    (b"1.0", b"100-continue", False),
])
def test_expect_continue(engine: engines.Engine, version: bytes, expect: bytes,
                         expected: bool) -> None:
    raw = b"PUT / HTTP/" + version + b"\r\nHost: a\r\nExpect: " + expect + b"\r\n\r\n"
    assert _head(engine, raw).expect_continue is expected


def test_head_fields(engine: engines.Engine) -> None:
    head = _head(engine, b"GET /p?q=1 HTTP/1.1\r\nHost: a\r\nAccept:  x  \r\nACCEPT: y\r\n"
                         b"X-Empty:\r\n\r\n")
    assert (head.method, head.target, head.http_version) == (b"GET", b"/p?q=1", b"1.1")
    assert head.headers == [(b"host", b"a"), (b"accept", b"x"), (b"accept", b"y"),
                            (b"x-empty", b"")]
    assert (head.content_length, head.chunked) == (None, False)


def test_framing_fields(engine: engines.Engine) -> None:
    head = _head(engine, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n")
    assert (head.content_length, head.chunked) == (12, False)
    head = _head(engine, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert (head.content_length, head.chunked) == (None, True)


def test_zero_length_body_ends_at_once(engine: engines.Engine) -> None:
    events = _events(engine.request_parser(),
                     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, type(END)]


def test_connect_is_refused(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    assert _error(parser, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", eof=False) == 405


def test_upgrade_is_a_plain_request(engine: engines.Engine) -> None:
    events = _events(engine.request_parser(),
                     b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nContent-Length: 2\r\n\r\nhi"
                     b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [e.target if isinstance(e, RequestHead) else e for e in events] == [
        b"/ws", b"hi", END, b"/next", END]
    assert (b"upgrade", b"websocket") in events[0].headers


# --- limits ----------------------------------------------------------------------------------

def _sized_head(size: int) -> bytes:
    """A request head of exactly ``size`` bytes."""
    base = b"GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n"
    return base[:-4] + b"v" * (size - len(base)) + b"\r\n\r\n"


@pytest.mark.parametrize("limit", [1024, 65536])
def test_head_limit(engine: engines.Engine, limit: int) -> None:
    assert isinstance(_events(engine.request_parser(limit), _sized_head(limit))[0], RequestHead)
    assert _error(engine.request_parser(limit), _sized_head(limit + 1)) == 431


def test_head_limit_does_not_depend_on_reads(engine: engines.Engine) -> None:
    raw = _sized_head(1025)
    assert _error(engine.request_parser(1024), raw) == 431
    assert _error(engine.request_parser(1024), *(raw[i:i + 1] for i in range(len(raw)))) == 431
    assert _error(engine.request_parser(1024), raw[:1030], eof=False) == 431


def test_long_request_line_is_414(engine: engines.Engine) -> None:
    line = b"GET /" + b"a" * 1020 + b" HTTP/1.1\r\n"
    assert _error(engine.request_parser(1024), line + b"Host: a\r\n\r\n") == 414
    assert _error(engine.request_parser(1024), line[:1030], eof=False) == 414


def test_chunk_line_limit_applies_when_a_read_leaves_it_incomplete(
        engine: engines.Engine) -> None:
    """As h11: a chunk-size line still incomplete after a read may not exceed the limit."""
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    line = b"1;" + b"e" * 1023              # 1025 bytes, one over the limit
    tail = b"\r\nx\r\n0\r\n\r\n"
    assert _error(engine.request_parser(1024), head + line, tail) == 431
    ok = _events(engine.request_parser(1024), head + line[:-1], line[-1:] + tail, eof=True)
    assert ok[1:] == [b"x", END, CLOSED]


# --- pipelining and errors ----------------------------------------------------------------------

_GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_pipelined_requests_come_in_order(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(_GET + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + _GET)
    first = parser.next_event()
    assert isinstance(first, RequestHead) and first.target == b"/"
    assert parser.next_event() is END
    # The caller answers the first request before it asks for the second.
    second = parser.next_event()
    assert isinstance(second, RequestHead) and second.target == b"/2"
    assert parser.next_event() == b"abc"
    assert parser.next_event() is END
    assert isinstance(parser.next_event(), RequestHead)
    assert parser.next_event() is END
    assert parser.next_event() is None


def test_error_comes_after_the_good_requests(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(_GET + b"GET / HTTP/1.1\r\n\r\n")  # second one lacks Host; feed never raises
    assert isinstance(parser.next_event(), RequestHead)
    assert parser.next_event() is END
    for _ in range(2):  # a dead parser keeps raising
        with pytest.raises(ProtocolError) as info:
            parser.next_event()
        assert info.value.status == 400
    parser.feed(_GET)  # ignored
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_data_after_a_closing_request(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [type(e) for e in _events(parser)] == [RequestHead, type(END)]
    assert _error(parser, _GET, eof=False) == 400


# --- EOF -------------------------------------------------------------------------------------------

def test_eof_between_requests_is_closed(engine: engines.Engine) -> None:
    assert _events(engine.request_parser(), b"", eof=False) == [CLOSED]
    assert _events(engine.request_parser(), _GET, eof=True)[-1] is CLOSED
    closing = b"GET / HTTP/1.0\r\n\r\n"
    assert _events(engine.request_parser(), closing, eof=True)[-1] is CLOSED


def test_eof_inside_a_request_is_an_error(engine: engines.Engine) -> None:
    assert _error(engine.request_parser(), b"GET / HTTP/1.1\r\nHo") == 400
    assert _error(engine.request_parser(),
                  b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc") == 400
    assert _error(engine.request_parser(),
                  b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab") \
        == 400


def test_eof_is_idempotent_and_final(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(b"")
    parser.feed(b"")
    assert _events(parser) == [CLOSED]
    with pytest.raises(RuntimeError):
        parser.feed(_GET)


# --- streaming -----------------------------------------------------------------------------------

_PIECE = 64 * 1024


def _chunked_stream(payload: bytes, chunk: int) -> tuple[bytes, list[tuple[int, int]]]:
    """A chunked request carrying ``payload``, and the spans of the stream that hold it."""
    out = bytearray(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    spans = []
    for sent in range(0, len(payload), chunk):
        piece = payload[sent:sent + chunk]
        out += b"%x;n=%d\r\n" % (len(piece), sent)
        spans.append((len(out), len(out) + len(piece)))
        out += piece + b"\r\n"
    out += b"0\r\nX-Sum: 1\r\n\r\n"
    return bytes(out), spans


def test_streaming_chunked_body(engine: engines.Engine) -> None:
    """5 MB in 64 KiB reads: each read's body bytes come out at once, never the whole body."""
    payload = (bytes(range(251)) * (5 * 1024 * 1024 // 251 + 1))[:5 * 1024 * 1024]
    stream, spans = _chunked_stream(payload, 10_000)
    parser = engine.request_parser()
    received = 0
    largest = 0
    for start in range(0, len(stream), _PIECE):
        fed = start + _PIECE
        for event in _events(parser, stream[start:fed]):
            if type(event) is bytes:
                assert event == payload[received:received + len(event)]
                received += len(event)
                largest = max(largest, len(event))
        # Everything of the body that was fed is out already: nothing is held back.
        assert received == sum(min(b, fed) - a for a, b in spans if a < fed)
    assert received == len(payload)
    assert largest <= _PIECE
    assert _events(parser, eof=True) == [CLOSED]


def test_streaming_length_body_hands_reads_on(engine: engines.Engine) -> None:
    total = 5 * 1024 * 1024
    parser = engine.request_parser()
    head = _events(parser, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
    assert head[0].content_length == total
    piece = b"z" * _PIECE
    received = 0
    for _ in range(total // _PIECE):
        events = _events(parser, piece)
        assert b"".join(events[:1]) == piece
        received += len(piece)
    assert events[-1] is END and received == total


def test_fast_engine_passes_whole_body_reads_through() -> None:
    parser = HttptoolsEngine().request_parser()
    parser.feed(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    parser.next_event()
    piece = b"0123456789"
    parser.feed(piece)
    assert parser.next_event() is piece  # no copy


# --- responses -----------------------------------------------------------------------------------

def _response(engine: engines.Engine, method: bytes, *chunks: bytes,
              eof: bool = False) -> tuple[list[Any], ResponseParser]:
    parser = engine.response_parser(method)
    return _events(parser, *chunks, eof=eof), parser


def test_response_with_length(engine: engines.Engine) -> None:
    events, parser = _response(engine, b"GET",
                               b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", b"lo")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.http_version) == (200, b"OK", b"1.1")
    assert (head.body, head.content_length, head.keep_alive) == ("length", 5, True)
    assert events[1:] == [b"hel", b"lo", END]
    assert parser.trailing_data is False


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_bodiless_responses(engine: engines.Engine, method: bytes, status: int) -> None:
    raw = b"HTTP/1.1 %d X\r\nContent-Length: 42\r\n\r\n" % status
    events, parser = _response(engine, method, raw)
    assert events[0].body == "none" and events[0].content_length == 42
    assert events[1:] == [END]
    assert events[0].keep_alive is True
    parser.feed(b"junk")
    assert parser.trailing_data is True


def test_chunked_response_drops_trailers(engine: engines.Engine) -> None:
    events, _ = _response(engine, b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                          b"\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n")
    assert events[0].body == "chunked"
    assert events[1:] == [b"abc", END]


def test_close_delimited_response(engine: engines.Engine) -> None:
    parser = engine.response_parser(b"GET")
    events = _events(parser, b"HTTP/1.1 200 OK\r\n\r\nsome", b" body")
    assert events[0].body == "close" and events[0].keep_alive is False
    assert events[1:] == [b"some", b" body"]
    assert _events(parser, eof=True) == [END]


def test_informational_heads_come_first(engine: engines.Engine) -> None:
    events, _ = _response(engine, b"PUT", b"HTTP/1.1 100 Continue\r\n\r\n",
                          b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                          b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert [(e.status, e.body) for e in events[:3]] == [(100, "none"), (103, "none"),
                                                        (201, "length")]
    assert events[3:] == [END]


def test_truncated_response_is_502(engine: engines.Engine) -> None:
    parser = engine.response_parser(b"GET")
    assert _error(parser, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc") == 502
    parser = engine.response_parser(b"GET")
    assert _error(parser, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == 502


def test_switching_protocols_is_502(engine: engines.Engine) -> None:
    parser = engine.response_parser(b"GET")
    assert _error(parser, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
                  eof=False) == 502


def test_response_eof_before_any_byte_is_502(engine: engines.Engine) -> None:
    assert _error(engine.response_parser(b"GET"), b"") == 502


def test_trailing_data(engine: engines.Engine) -> None:
    events, parser = _response(engine, b"GET",
                               b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy")
    assert events[1:] == [b"x", END]
    assert parser.trailing_data is True
    events, parser = _response(engine, b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert parser.trailing_data is False
    parser.feed(b"late")
    assert parser.trailing_data is True


def test_connect_is_never_forwarded(engine: engines.Engine) -> None:
    with pytest.raises(ValueError):
        engine.response_parser(b"CONNECT")


# --- choosing an engine -------------------------------------------------------------------------

def test_select_engine() -> None:
    assert available_engines() == ["h11", "httptools"]
    assert select_engine("auto").name == "httptools"
    assert isinstance(select_engine("h11"), H11Engine)
    assert select_engine("httptools").name == "httptools"
    with pytest.raises(ValueError):
        select_engine("llhttp")


def test_without_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httptools", None)  # import now fails as if absent
    monkeypatch.delitem(sys.modules, "dakia_prefork.http.engines.httptools_engine")
    assert available_engines() == ["h11"]
    assert select_engine("auto").name == "h11"
    with pytest.raises(ImportError, match=r"httptools is not installed: "
                                          r"pip install dakia-prefork\[fast\]"):
        select_engine("httptools")


def test_fast_engine_keeps_typical_traffic_off_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Well-formed messages are parsed by llhttp alone; h11 is only for the unusual."""
    def refuse(*args: object) -> None:
        raise AssertionError("the reference was consulted")

    monkeypatch.setattr(httptools_engine, "reference_request_head", refuse)
    monkeypatch.setattr(httptools_engine, "reference_response_head", refuse)
    fast = HttptoolsEngine()
    for case in corpus.REQUESTS:
        if case.name in ("typical browser GET", "POST with Content-Length", "chunked",
                         "pipelined GET, POST, chunked", "Expect: 100-continue",
                         "Upgrade: websocket (a handshake: the parser pauses after it)", "one hundred headers",
                         "HTTP/1.0 keep-alive", "trailing whitespace stripped from values"):
            assert corpus.verdict(corpus.replay(fast.request_parser(), [case.raw])) is None
    for rcase in corpus.RESPONSES:
        if rcase.name in ("typical response", "chunked", "100 Continue, then 200",
                          "no reason phrase", "close-delimited"):
            outcome = corpus.replay(fast.response_parser(rcase.method), [rcase.raw])
            assert corpus.verdict(outcome) is None
