"""The fast engine: llhttp (through httptools) parses heads, Python slices out bodies.

Theory of operation
-------------------
This engine must take the very same decisions as the h11 engine, at a fraction of its cost.
Each message goes through three steps:

1. ``framing`` cuts the head out of the buffered bytes (first-byte rule, ``LF [CR] LF``,
   size limit), exactly as the h11 engine does.
2. A fresh ``httptools.HttpRequestParser`` (or ``HttpResponseParser``) is fed that head and
   nothing else. Its callbacks collect the target and the headers (names lower-cased and
   values stripped as they arrive); ``validate`` then checks the few places where llhttp is more lenient than
   h11 and the gateway policy, and ``policy`` derives the framing fields. Whenever llhttp
   refuses the head, or ``validate`` cannot vouch for it, the verdict comes from the
   reference (``h11_engine.reference_*_head``): that is rare (unusual methods, broken or
   hostile input), and it makes both the status of an error and the fields of an accepted
   head identical to the h11 engine's by construction.
3. The body is read here, not by llhttp: a Content-Length body is sliced straight out of
   the fed bytes (a whole read that is all body is handed on as the same object), a chunked
   body goes through ``chunked.ChunkedDecoder``, which follows h11's chunk grammar (llhttp's
   differs in ways its callbacks cannot show), a close-delimited response body runs to EOF.

Why a fresh llhttp parser per head: llhttp never sees bodies, so after a head with a body
it would sit waiting for one; a new parser costs about 0.2 µs, less than keeping it in step.
Why not llhttp's keep-alive and upgrade logic: ``should_keep_alive()`` is unreliable once a
message completed, and only WebSocket upgrades are honoured, under the rules both engines
must share, so both come from ``policy``. llhttp's HttpParserUpgrade (Upgrade +
Connection: upgrade, or CONNECT) only means "the head was parsed"; the head then goes
through the same checks as any other. After a WebSocket handshake the request parser
pauses (``_PAUSED``) and a response parser made for one stops at its 101 (``_SWITCHED``),
as in the h11 engine: the bytes that follow are kept whole for ``resume`` or ``upgraded``;
a 101 is rare enough to be judged by the reference.

Buffering: a read that holds whole messages is parsed in place; only an incomplete head or
chunk-size line is kept, in a bytearray, until the rest arrives (appending to it is
amortised O(1), and the search for the end of a head resumes where it stopped, so a head
sent a byte at a time costs O(n), not O(n²)). An error is kept until the events before it
have been taken, as in the h11 engine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Final, Generic, TypeVar

import httptools
from httptools import HttpParserError, HttpParserUpgrade

from ..events import CLOSED, END, Headers, ProtocolError, RequestEvent, RequestHead, \
    ResponseEvent, ResponseHead
from . import framing, validate
from .chunked import ChunkedDecoder
from .h11_engine import client_connection, reference_request_head, reference_response_head

_HEAD: Final = 0      # framing a head
_LENGTH: Final = 1    # inside a Content-Length body
_CHUNKED: Final = 2   # inside a chunked body
_CLOSE: Final = 3     # inside a close-delimited (response) body
_DRAINED: Final = 4   # request side: a message that closes the connection has ended
_DONE: Final = 5      # nothing more to parse
_DEAD: Final = 6      # an error was raised: it is all next_event has left to say
_PAUSED: Final = 7    # request side: after a WebSocket handshake, bytes kept unparsed
_SWITCHED: Final = 8  # the connection is no longer HTTP: bytes kept for the tunnel

_head_end_search: Final = framing.HEAD_END.search

_Event = TypeVar("_Event", RequestEvent, ResponseEvent)


class _Parser(ABC, Generic[_Event]):
    """What both directions share: buffering of incomplete units, the event queue, and
    Content-Length and chunked bodies."""

    __slots__ = ("_limit", "_pending", "_scan", "_events", "_error", "_state", "_remaining",
                 "_chunked", "_eof", "_headers")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: bytearray | None = None  # bytes kept until the rest of a unit arrives
        self._scan = 0                          # head-end search resumes here (from head start)
        self._events: deque[_Event] = deque()
        self._error: ProtocolError | None = None  # raised once the events before it are out
        self._state = _HEAD
        self._remaining = 0                     # of a Content-Length body
        self._chunked: ChunkedDecoder | None = None
        self._eof = False
        self._headers: Headers = []             # llhttp callback results, per head

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp callback: collect one header, name lower-cased, value without the trailing
        SP/HTAB that llhttp keeps (it drops the leading ones)."""
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def feed(self, data: bytes) -> None:
        """See RequestParser.feed. Errors are kept for next_event, never raised here."""
        if self._state == _DEAD:
            return
        if self._eof:
            if data:
                raise RuntimeError("data fed after EOF")
            return
        try:
            if not data:
                self._eof = True
                self._feed_eof()
                return
            pending = self._pending
            if pending is None:
                buf: bytes | bytearray = data
            else:
                pending += data
                buf = pending
            pos = self._parse(buf)
            if pos == len(buf):
                self._pending = None
            elif buf is pending:
                del pending[:pos]
            else:
                self._pending = bytearray(memoryview(buf)[pos:])
        except ProtocolError as exc:
            self._error = exc
            self._state = _DEAD
            self._pending = None

    def next_event(self) -> _Event:
        """See RequestParser.next_event."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error  # a dead parser keeps raising
        return None

    @abstractmethod
    def _parse(self, buf: bytes | bytearray) -> int:
        """Parse ``buf`` as far as it goes; return the offset of the first unused byte.

        Raises ProtocolError; the caller keeps it for next_event().
        """

    @abstractmethod
    def _feed_eof(self) -> None:
        """Handle EOF: queue what it completes, or raise ProtocolError."""

    def _frame(self, buf: bytes | bytearray, pos: int, status: int) -> int:
        """The end of the head that starts at ``buf[pos]``, or -1 if it is incomplete.

        Raises ProtocolError for a bad first byte or a head over the limit (414/431 on a
        request, 502 on a response).
        """
        if buf[pos] < 0x21:
            framing.check_first_byte(buf, pos, status)
        match = _head_end_search(buf, pos + self._scan)
        end = -1 if match is None else match.end()
        if end == -1 or end - pos > self._limit:
            size_status = framing.size_error(buf, pos, end, self._limit)
            if size_status > 0:
                raise ProtocolError("head too large", size_status if status == 400 else status)
            self._scan = max(0, len(buf) - pos - 2)
            return -1
        self._scan = 0
        return end

    def _length_body(self, buf: bytes | bytearray, pos: int) -> int:
        """Hand on the bytes of a Content-Length body; return the new position."""
        end = len(buf)
        take = end - pos
        if take > self._remaining:
            take = self._remaining
        if type(buf) is bytes:
            # A whole read of body is handed on as it is: no copy.
            self._events.append(buf if pos == 0 and take == end else buf[pos:pos + take])
        else:
            self._events.append(bytes(buf[pos:pos + take]))
        self._remaining -= take
        return pos + take


class HttptoolsRequestParser(_Parser[RequestEvent]):
    """Downstream parser on llhttp (see the module docstring)."""

    __slots__ = ("_keep_alive", "_url", "_upgrade")

    def __init__(self, max_header_bytes: int = 65536) -> None:
        super().__init__(max_header_bytes)
        self._keep_alive = True                 # of the request being read
        self._upgrade = False                   # it is a WebSocket handshake
        self._url = b""

    def resume(self) -> None:
        """See RequestParser.resume."""
        if self._state != _PAUSED:
            return
        self._state = _HEAD
        self._upgrade = False
        pending = self._pending
        eof = self._eof
        self._pending = None
        self._eof = False
        if pending:
            self.feed(bytes(pending))
        if eof:
            self.feed(b"")

    def upgraded(self) -> bytes:
        """See RequestParser.upgraded."""
        pending = self._pending
        self._pending = None
        self._events.clear()
        self._state = _SWITCHED
        return bytes(pending) if pending else b""

    def on_url(self, url: bytes) -> None:
        """llhttp callback: collect the request target."""
        self._url += url

    def _parse(self, buf: bytes | bytearray) -> int:
        events = self._events
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _HEAD:
                head_end = self._frame(buf, pos, 400)
                if head_end == -1:
                    return pos
                head = self._head(buf if pos == 0 and head_end == end and type(buf) is bytes
                                  else bytes(buf[pos:head_end]))
                events.append(head)
                pos = head_end
                self._keep_alive = head.keep_alive
                self._upgrade = head.upgrade
                if head.chunked:
                    self._chunked = ChunkedDecoder(self._limit, None)
                    self._state = _CHUNKED
                    continue
                if head.content_length:
                    self._remaining = head.content_length
                    self._state = _LENGTH
                    continue
            elif state == _LENGTH:
                pos = self._length_body(buf, pos)
                if self._remaining:
                    return pos
            elif state == _CHUNKED:
                decoder = self._chunked
                assert decoder is not None
                pos = decoder.decode(buf, pos, events.append)
                if not decoder.done:
                    return pos
                self._chunked = None
            elif state == _PAUSED:
                return pos      # kept in _pending: at most one read, nobody reads meanwhile
            elif state == _SWITCHED:
                raise RuntimeError("data fed after the connection switched protocols")
            else:  # _DRAINED
                raise ProtocolError("data after a request that closes the connection", 400)
            # The message has ended.
            events.append(END)
            # A handshake has no body, so nothing of it is left to read before the pause.
            self._state = _PAUSED if self._upgrade else _HEAD if self._keep_alive \
                else _DRAINED
        return pos

    def _head(self, head: bytes) -> RequestHead:
        """Parse one complete head with llhttp, or have the reference judge it."""
        self._url = b""
        self._headers = []
        try:
            httptools.HttpRequestParser(self).feed_data(head)
        except HttpParserUpgrade:
            pass  # Upgrade or CONNECT: the whole head was parsed; policy decides
        except HttpParserError:
            return reference_request_head(head, self._limit)[0]
        result = validate.request(head, self._url, self._headers)
        if result is None:
            return reference_request_head(head, self._limit)[0]
        return result

    def _feed_eof(self) -> None:
        """The client closed its side: end cleanly between messages, else fail."""
        pending = self._pending
        state = self._state
        if state == _PAUSED:
            return          # ``_eof`` is set: resume() feeds the EOF after what is pending
        if state == _HEAD and pending:
            status = framing.size_error(pending, 0, -1, self._limit, at_eof=True)
            raise ProtocolError("connection closed inside a request head", status or 400)
        if state == _LENGTH:
            raise ProtocolError("peer closed connection without sending complete message body",
                                400)
        if state == _CHUNKED:
            assert self._chunked is not None
            raise self._chunked.eof(len(pending) if pending else 0)
        self._events.append(CLOSED)
        self._state = _DONE


class HttptoolsResponseParser(_Parser[ResponseEvent]):
    """Upstream parser on llhttp, for one response (see the module docstring)."""

    __slots__ = ("_method", "_seen", "_trailing", "_reason", "_websocket")

    def __init__(self, request_method: bytes, max_header_bytes: int = 65536,
                 websocket: bool = False) -> None:
        if request_method == b"CONNECT":
            raise ValueError("the gateway never forwards CONNECT")
        super().__init__(max_header_bytes)
        self._method = request_method
        self._websocket = websocket     # the request was a handshake: a 101 may come
        self._seen = False          # any byte of the response received yet
        self._trailing = False
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        """llhttp callback: collect the reason phrase."""
        self._reason += reason

    @property
    def trailing_data(self) -> bool:
        """See ResponseParser.trailing_data."""
        return self._trailing

    def upgraded(self) -> bytes:
        """See ResponseParser.upgraded."""
        pending = self._pending
        self._pending = None
        return bytes(pending) if pending else b""

    def _parse(self, buf: bytes | bytearray) -> int:
        self._seen = True
        events = self._events
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _HEAD:
                head_end = self._frame(buf, pos, 502)
                if head_end == -1:
                    return pos
                head = self._head(buf if pos == 0 and head_end == end and type(buf) is bytes
                                  else bytes(buf[pos:head_end]))
                events.append(head)
                pos = head_end
                if head.status == 101:      # only ever for a handshake (policy)
                    self._state = _SWITCHED
                    return pos
                if head.status < 200:
                    continue  # an informational response: the final head follows
                body = head.body
                if body == "length" and head.content_length:
                    self._remaining = head.content_length
                    self._state = _LENGTH
                    continue
                if body == "chunked":
                    self._chunked = ChunkedDecoder(self._limit, 502)
                    self._state = _CHUNKED
                    continue
                if body == "close":
                    self._state = _CLOSE
                    continue
            elif state == _LENGTH:
                pos = self._length_body(buf, pos)
                if self._remaining:
                    return pos
            elif state == _CHUNKED:
                decoder = self._chunked
                assert decoder is not None
                pos = decoder.decode(buf, pos, events.append)
                if not decoder.done:
                    return pos
                self._chunked = None
            elif state == _CLOSE:
                events.append(buf if pos == 0 and type(buf) is bytes else bytes(buf[pos:]))
                return end
            elif state == _SWITCHED:
                return pos      # kept in _pending for the tunnel
            else:  # _DONE: whatever follows the response
                self._trailing = True
                return end
            # The response has ended.
            events.append(END)
            self._state = _DONE
        return pos

    def _head(self, head: bytes) -> ResponseHead:
        """Parse one complete head with llhttp, or have the reference judge it."""
        self._reason = b""
        self._headers = []
        parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(head)
        except (HttpParserError, HttpParserUpgrade):
            return self._reference(head)
        result = validate.response(head, parser.get_status_code(), self._reason,
                                   self._headers, self._method, self._websocket)
        if result is None:
            return self._reference(head)
        return result

    def _reference(self, head: bytes) -> ResponseHead:
        """The h11 engine's verdict on one head (a fresh client connection per head is
        equivalent: h11 reads each head of a response the same way)."""
        conn = client_connection(self._method, self._limit, self._websocket)
        return reference_response_head(conn, head, self._method, self._websocket)

    def _feed_eof(self) -> None:
        """The upstream closed: ends a close-delimited body, else the response is broken."""
        state = self._state
        if state == _SWITCHED:
            return          # the tunnel's business
        if state == _CLOSE:
            self._events.append(END)
            self._state = _DONE
        elif state == _HEAD:
            if self._seen:
                raise ProtocolError("upstream closed inside a response head", 502)
            raise ProtocolError("upstream closed the connection without responding", 502)
        elif state != _DONE:
            raise ProtocolError("upstream closed before the end of the response body", 502)
