"""The strict chunked decoder (http/engines/chunked.py), through both engines.

The corpus (parser_corpus.py) holds the verdicts on whole streams; these tests pin what a
stream alone cannot show: the size bounds at their edges, that a bare CR or LF is refused
as soon as it arrives (without waiting for a CRLF or EOF), and that requests and responses
are judged by the same grammar.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dakia_prefork.http import engines
from dakia_prefork.http.engines.chunked import ChunkedDecoder
from dakia_prefork.http.events import CLOSED, END, ProtocolError, RequestHead, RequestParser, \
    ResponseHead, ResponseParser

_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
_RESPONSE = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(params=["h11", "httptools"])
def engine(request: pytest.FixtureRequest) -> engines.Engine:
    return engines.select_engine(request.param)


def _take(parser: RequestParser | ResponseParser) -> list[object]:
    """Every event available now; ("error", status) last if the parser failed."""
    out: list[object] = []
    try:
        while (event := parser.next_event()) is not None:
            out.append(event)
    except ProtocolError as exc:
        out.append(("error", exc.status))
    return out


def _decode(data: bytes, limit: int = 65536) -> tuple[bytes, bool]:
    """Run the decoder alone on ``data``: (body bytes, done)."""
    decoder = ChunkedDecoder(limit, None)
    body: list[bytes] = []
    decoder.decode(data, 0, body.append)
    return b"".join(body), decoder.done


@pytest.mark.parametrize("line", [b"1", b"01", b"0" * 15 + b"1", b"000000000000000a",
                                  b"Ff"])
def test_sizes_of_one_to_sixteen_digits(line: bytes) -> None:
    size = int(line, 16)
    body, done = _decode(line + b"\r\n" + b"x" * size + b"\r\n0\r\n\r\n")
    assert (body, done) == (b"x" * size, True)


def test_the_largest_size_is_accepted_and_streams() -> None:
    decoder = ChunkedDecoder(65536, None)
    body: list[bytes] = []
    data = b"ffffffffffffffff\r\nabc"
    assert decoder.decode(data, 0, body.append) == len(data)
    assert body == [b"abc"] and not decoder.done


@pytest.mark.parametrize("line", [b"10000000000000000", b"00000000000000001",
                                  b"0" * 20 + b"1", b"f" * 17])
def test_seventeen_digits_or_more_are_refused(line: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        _decode(line + b"\r\nx\r\n0\r\n\r\n")
    assert err.value.status == 400


@pytest.mark.parametrize("partial", [b"5;a=b\r\r", b"5\n", b"5;a\nb", b"5\r5", b"\n",
                                     b"5;a=\"b\r\"x"])
def test_bare_cr_or_lf_fails_before_any_crlf(engine: engines.Engine, partial: bytes) -> None:
    parser = engine.request_parser()
    parser.feed(_HEAD + partial)
    events = _take(parser)
    assert isinstance(events[0], RequestHead)
    assert events[-1] == ("error", 400)


def test_bare_cr_fails_when_it_arrives_a_byte_at_a_time(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(_HEAD)
    assert isinstance(_take(parser)[0], RequestHead)
    for byte in b"5;a=b\r":
        parser.feed(bytes([byte]))
        assert _take(parser) == []      # a CR at the end may still be followed by LF
    parser.feed(b"\r")
    assert _take(parser) == [("error", 400)]


def test_a_trailing_cr_waits_for_its_lf(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(_HEAD + b"3;x=\"y\"\r")
    assert isinstance(_take(parser)[0], RequestHead)
    parser.feed(b"\nabc\r\n0\r\n\r\n")
    assert _take(parser) == [b"abc", END]


@pytest.mark.parametrize("bad", [b"3 \r\nabc\r\n", b"3;a@\r\nabc\r\n", b"3;a=b\r\rabc\r\n",
                                 b"00000000000000003\r\nabc\r\n", b"3\r\nabcX\r\n"])
def test_responses_follow_the_same_grammar(engine: engines.Engine, bad: bytes) -> None:
    parser = engine.response_parser(b"GET")
    parser.feed(_RESPONSE + b"2\r\nok\r\n" + bad + b"0\r\n\r\n")
    events = _take(parser)
    assert isinstance(events[0], ResponseHead) and events[0].status == 200
    assert events[1] == b"ok"
    assert events[-1] == ("error", 502)


def test_extensions_are_dropped_from_the_body(engine: engines.Engine) -> None:
    parser = engine.request_parser()
    parser.feed(_HEAD + b"3 ; name = \"a;b=c\\\"\" ; flag\r\nabc\r\n0 ;last\r\nX-T: 1\r\n\r\n")
    events = _take(parser)
    assert events[1:] == [b"abc", END]


# --- round trip, with hypothesis --------------------------------------------------------------

_tchars = st.text(alphabet="!#$%&'*+-.^_`|~09AZaz", min_size=1, max_size=5)
_quoted = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                  max_size=6).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"')
                                  + '"')
_bws = st.sampled_from(["", " ", "\t", " \t "])


@st.composite
def _extension(draw: st.DrawFn) -> bytes:
    text = draw(_bws) + ";" + draw(_bws) + draw(_tchars)
    if draw(st.booleans()):
        text += draw(_bws) + "=" + draw(_bws) + draw(_tchars | _quoted)
    return text.encode()


@st.composite
def _chunked_body(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid chunked body in every legal spelling, and the data it carries."""
    wire = bytearray()
    data = bytearray()
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4)):
        digits = b"%x" % len(chunk)
        digits = b"0" * draw(st.integers(0, 16 - len(digits))) + digits
        if draw(st.booleans()):
            digits = digits.upper()
        wire += digits + b"".join(draw(st.lists(_extension(), max_size=2))) + b"\r\n"
        wire += chunk + b"\r\n"
        data += chunk
    wire += b"0" + b"".join(draw(st.lists(_extension(), max_size=1))) + b"\r\n"
    wire += draw(st.sampled_from([b"", b"X-Sum: 1\r\n", b"A: b\r\nC: d\r\n"])) + b"\r\n"
    return bytes(wire), bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_chunked_body(), st.lists(st.integers(0, 400), max_size=5))
def test_every_legal_spelling_decodes_to_its_data_on_both_engines(
        body: tuple[bytes, bytes], cuts: list[int]) -> None:
    wire, data = body
    stream = _HEAD + wire + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    parts = [stream[a:b] for a, b in zip(points, points[1:]) if b > a]
    outcomes = []
    for name in ("h11", "httptools"):
        parser = engines.select_engine(name).request_parser()
        events: list[object] = []
        for part in parts:
            parser.feed(part)
            events += _take(parser)
        parser.feed(b"")
        events += _take(parser)
        body_bytes = b"".join(e for e in events if isinstance(e, bytes))
        heads = [e.target for e in events if isinstance(e, RequestHead)]
        assert body_bytes == data and heads == [b"/", b"/next"], events
        assert events[-1] is CLOSED
        outcomes.append(_comparable(events))
    assert outcomes[0] == outcomes[1]


def _comparable(events: list[object]) -> list[object]:
    """Heads by their fields, runs of body bytes joined (engines may cut them apart
    differently), END and CLOSED as they are."""
    out: list[object] = []
    for event in events:
        if isinstance(event, bytes):
            if out and isinstance(out[-1], bytes):
                out[-1] += event
            else:
                out.append(event)
        elif isinstance(event, RequestHead):
            out.append(tuple(getattr(event, name) for name in type(event).__slots__))
        else:
            out.append(event)
    return out
