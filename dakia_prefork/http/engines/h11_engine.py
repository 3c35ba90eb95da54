"""The reference engine: h11, strict and pure Python, plus the gateway's policy.

Theory of operation
-------------------
h11 is a state machine for a whole connection, with a writer for our side and a reader for
the peer's. We only read through it, so its states never advance past one message:

* Downstream, each request gets a fresh ``h11.Connection(h11.SERVER)``; when it reports
  EndOfMessage the bytes it has not consumed (``trailing_data``) start the next request.
* Upstream, a ``h11.Connection(h11.CLIENT)`` per response is first told the request method
  by sending it a synthetic request (the bytes it produces are dropped): HEAD changes the
  framing of the response.

Heads are cut out of the stream by ``framing`` before h11 sees them (first-byte rule, end of
head, size limit, raw-byte policy), so these decisions are shared with the httptools engine
and do not depend on how the bytes were split into reads. h11 then checks the grammar and
the framing headers, and ``policy`` adds the gateway's rules. A Content-Length body (or
none) is counted out here (``_LENGTH``): h11 has already judged the head that framed it,
counting bytes has no grammar to get wrong, and h11's reader, its state machine and its
events cost more than the rest of a small request together. A chunked body is decoded by
``chunked.ChunkedDecoder`` (``_CHUNKED``), the strict decoder the httptools engine uses
too: h11's own chunk reader is more lenient than RFC 9112 (20-digit sizes, whitespace
after the size, any byte in an extension). h11 reads only close-delimited response bodies
(``_BODY``), which have no framing to judge.

``reference_request_head`` and ``reference_response_head`` are the verdict of this engine
on one complete head. The httptools engine asks them whenever llhttp's result alone cannot
tell what this engine would do, which is how the two engines stay identical by construction
on unusual input.

Errors are queued behind the events that precede them (see ``events``), so a pipelined
request that is broken does not hide the good requests before it.

A WebSocket handshake (``RequestHead.upgrade``) pauses the request parser after its END:
what follows may be WebSocket frames rather than a request, and only the upstream's answer
tells. ``upgraded`` hands those bytes over for the tunnel, ``resume`` parses them as the
next request. A response parser made for a handshake ends at a 101 the same way, keeping
what follows it for the tunnel. The httptools engine has the same states.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Final, cast

import h11

from ..events import CLOSED, END, ProtocolError, RequestEvent, RequestHead, ResponseEvent, \
    ResponseHead
from . import framing, policy
from .chunked import ChunkedDecoder

# Parser states. _DRAINED: a message that closes the connection has ended, only EOF may follow.
_HEAD: Final = 0
_BODY: Final = 1      # a close-delimited response body, read by h11
_DRAINED: Final = 2
_DONE: Final = 3
_DEAD: Final = 4
_LENGTH: Final = 5    # a Content-Length body, counted here
_CHUNKED: Final = 6   # a chunked body, decoded by ChunkedDecoder
_PAUSED: Final = 7    # after a WebSocket handshake: bytes are kept, not parsed (resume/upgraded)
_SWITCHED: Final = 8  # the connection is no longer HTTP: bytes are kept for the tunnel


def _from_h11(exc: h11.RemoteProtocolError, status: int | None = None) -> ProtocolError:
    """Translate an h11 error, keeping its status hint unless ``status`` overrides it."""
    return ProtocolError(str(exc), exc.error_status_hint if status is None else status)


def reference_request_head(head: bytes, limit: int) -> tuple[RequestHead, h11.Connection]:
    """Judge one complete request head (terminator included) as this engine does.

    Returns the head and the h11 connection positioned at the start of its body.
    Raises ProtocolError with h11's status hint, or the policy's.
    """
    framing.check_raw_head(head, 400)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise _from_h11(exc) from None
    assert isinstance(event, h11.Request), event  # a complete head always yields a Request
    result = policy.request_head(event.method, event.target, event.http_version,
                                 list(event.headers))
    assert result is not None, "h11 output is canonical"
    return result, conn


# The synthetic requests, one per method seen (h11 events are immutable): building and
# validating an h11.Request costs more than sending it. Bounded: a client's method is a
# token of its own choosing, so beyond the standard ones each is built afresh.
_SYNTHETIC: dict[bytes, h11.Request] = {}
_SYNTHETIC_MAX = 64
_END_OF_MESSAGE = h11.EndOfMessage()


def _synthetic_request(method: bytes) -> h11.Request:
    request = _SYNTHETIC.get(method)
    if request is None:
        request = h11.Request(method=method, target=b"/", headers=[(b"host", b"upstream")])
        if len(_SYNTHETIC) < _SYNTHETIC_MAX:
            _SYNTHETIC[method] = request
    return request


# A WebSocket handshake's stand-in: h11 takes a 101 only after a request that proposed an
# upgrade (its state machine's pending switch proposal).
_SYNTHETIC_WEBSOCKET = h11.Request(method=b"GET", target=b"/", headers=[
    (b"host", b"upstream"), (b"connection", b"upgrade"), (b"upgrade", b"websocket")])


def client_connection(request_method: bytes, limit: int,
                      websocket: bool = False) -> h11.Connection:
    """An h11 client connection that has sent a request with ``request_method`` (a
    WebSocket handshake when ``websocket``)."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=limit)
    conn.send(_SYNTHETIC_WEBSOCKET if websocket else _synthetic_request(request_method))
    conn.send(_END_OF_MESSAGE)
    return conn


def reference_response_head(conn: h11.Connection, head: bytes,
                            request_method: bytes, websocket: bool = False) -> ResponseHead:
    """Judge one complete response head with ``conn``, a client connection awaiting it.

    Raises ProtocolError(502) for anything h11 or the policy refuses.
    """
    framing.check_raw_head(head, 502)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise _from_h11(exc, 502) from None
    assert isinstance(event, (h11.Response, h11.InformationalResponse)), event
    result = policy.response_head(event.status_code, event.reason, event.http_version,
                                  list(event.headers), request_method, websocket)
    assert result is not None, "h11 output is canonical"
    return result


class H11RequestParser:
    """Downstream parser on h11 (see the module docstring)."""

    __slots__ = ("_limit", "_buf", "_scan", "_chunked", "_events", "_error", "_state", "_eof",
                 "_keep_alive", "_remaining", "_upgrade")

    def __init__(self, max_header_bytes: int = 65536) -> None:
        self._limit = max_header_bytes
        self._buf = bytearray()            # the head being framed, or bytes after a head
        self._remaining = 0                # of a Content-Length body (state _LENGTH)
        self._scan = 0                     # where to resume the search for its end
        self._chunked: ChunkedDecoder | None = None  # decodes the current body (_CHUNKED)
        self._events: deque[RequestEvent] = deque()
        self._error: ProtocolError | None = None  # raised once the events before it are out
        self._state = _HEAD
        self._eof = False
        self._keep_alive = True            # of the request being read
        self._upgrade = False              # the request being read is a WebSocket handshake

    def feed(self, data: bytes) -> None:
        """See RequestParser.feed. Errors are queued, never raised here."""
        if self._state == _DEAD:
            return
        if self._state >= _PAUSED:
            if self._state == _SWITCHED:
                raise RuntimeError("data fed after the connection switched protocols")
            if data:
                self._buf += data          # at most one read: nobody reads while paused
            else:
                self._eof = True           # handled on resume
            return
        if self._eof:
            if data:
                raise RuntimeError("data fed after EOF")
            return
        try:
            if not data:
                self._eof = True
                self._feed_eof()
            elif self._state == _HEAD:
                self._buf += data
                self._run()
            elif self._state == _LENGTH:
                if not self._buf and len(data) < self._remaining:
                    self._events.append(data)      # all body, and not its end: no copy
                    self._remaining -= len(data)
                else:
                    self._buf += data
                    self._run()
            elif self._state == _CHUNKED:
                self._buf += data
                self._run()
            else:  # _DRAINED
                raise ProtocolError("data after a request that closes the connection", 400)
        except ProtocolError as exc:
            self._error = exc
            self._state = _DEAD
            self._chunked = None

    def resume(self) -> None:
        """See RequestParser.resume."""
        if self._state != _PAUSED:
            return
        self._state = _HEAD
        self._upgrade = False
        try:
            self._run()
            if self._eof:
                self._feed_eof()
        except ProtocolError as exc:
            self._error = exc
            self._state = _DEAD
            self._chunked = None

    def upgraded(self) -> bytes:
        """See RequestParser.upgraded."""
        data = bytes(self._buf)
        self._buf = bytearray()
        self._events.clear()
        self._state = _SWITCHED
        return data

    def next_event(self) -> RequestEvent:
        """See RequestParser.next_event."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error  # a dead parser keeps raising
        return None

    def _run(self) -> None:
        """Parse heads and bodies until the input runs out or a message closes the connection."""
        while True:
            if self._state == _HEAD:
                if not self._head():
                    return
            elif self._state == _LENGTH:
                if not self._length():
                    return
            elif self._state == _CHUNKED:
                if not self._chunked_body():
                    return
            else:
                return

    def _head(self) -> bool:
        """Frame and judge the next head; True when it was complete."""
        buf = self._buf
        if not buf:
            return False
        framing.check_first_byte(buf, 0, 400)
        end = framing.find_head_end(buf, 0, self._scan)
        status = framing.size_error(buf, 0, end, self._limit)
        if status > 0:
            raise ProtocolError("request head too large", status)
        if end == -1:
            self._scan = max(0, len(buf) - 2)
            return False
        head = reference_request_head(bytes(buf[:end]), self._limit)[0]
        self._scan = 0
        self._keep_alive = head.keep_alive
        self._upgrade = head.upgrade
        self._events.append(head)
        del buf[:end]                      # what follows the head: body, then the next request
        if head.chunked:
            self._chunked = ChunkedDecoder(self._limit, None)
            self._state = _CHUNKED
        else:
            self._remaining = head.content_length or 0
            self._state = _LENGTH
        return True

    def _length(self) -> bool:
        """Hand on the buffered bytes of a Content-Length body; True when it ended and the
        next request may follow."""
        buf = self._buf
        remaining = self._remaining
        if remaining:
            take = min(remaining, len(buf))
            if take:
                self._events.append(bytes(buf[:take]))
                del buf[:take]
                remaining = self._remaining = remaining - take
            if remaining:
                return False
        self._events.append(END)
        if self._upgrade:
            self._state = _PAUSED          # a handshake has no body: ``buf`` is what follows
            return False
        if self._keep_alive:
            self._state = _HEAD
            return True
        self._state = _DRAINED
        if buf:
            raise ProtocolError("data after a request that closes the connection", 400)
        return False

    def _chunked_body(self) -> bool:
        """Decode the buffered bytes of a chunked body; True when it ended and the next
        request may follow."""
        decoder = self._chunked
        assert decoder is not None
        buf = self._buf
        del buf[:decoder.decode(buf, 0, self._events.append)]
        if not decoder.done:
            return False
        self._chunked = None
        self._events.append(END)
        if self._keep_alive:
            self._state = _HEAD
            return True
        self._state = _DRAINED
        if buf:
            raise ProtocolError("data after a request that closes the connection", 400)
        return False

    def _feed_eof(self) -> None:
        """The client closed its side: end cleanly between messages, else fail."""
        if self._state == _LENGTH:
            raise ProtocolError("peer closed connection without sending complete message body",
                                400)
        if self._state == _CHUNKED:
            assert self._chunked is not None
            raise self._chunked.eof(len(self._buf))
        if self._state == _HEAD and self._buf:
            status = framing.size_error(self._buf, 0, -1, self._limit, at_eof=True)
            raise ProtocolError("connection closed inside a request head", status or 400)
        else:
            self._events.append(CLOSED)
            self._state = _DONE


class H11ResponseParser:
    """Upstream parser on h11, for one response (see the module docstring)."""

    __slots__ = ("_limit", "_method", "_buf", "_scan", "_conn", "_events", "_error", "_state",
                 "_eof", "_seen", "_trailing", "_remaining", "_chunked", "_websocket")

    def __init__(self, request_method: bytes, max_header_bytes: int = 65536,
                 websocket: bool = False) -> None:
        if request_method == b"CONNECT":
            raise ValueError("the gateway never forwards CONNECT")
        self._limit = max_header_bytes
        self._method = request_method
        self._websocket = websocket        # the request was a handshake: a 101 may come
        self._buf = bytearray()
        self._scan = 0
        self._conn = client_connection(request_method, max_header_bytes, websocket)
        self._events: deque[ResponseEvent] = deque()
        self._error: ProtocolError | None = None
        self._state = _HEAD
        self._eof = False
        self._seen = False          # any byte of the response received yet
        self._trailing = False
        self._remaining = 0         # of a Content-Length body (state _LENGTH)
        self._chunked: ChunkedDecoder | None = None  # decodes a chunked body (_CHUNKED)

    @property
    def trailing_data(self) -> bool:
        """See ResponseParser.trailing_data."""
        return self._trailing

    def upgraded(self) -> bytes:
        """See ResponseParser.upgraded."""
        data = bytes(self._buf)
        self._buf = bytearray()
        return data

    def feed(self, data: bytes) -> None:
        """See ResponseParser.feed. Errors are queued, never raised here."""
        if self._state == _DEAD:
            return
        if self._eof:
            if data:
                raise RuntimeError("data fed after EOF")
            return
        if data:
            self._seen = True
        try:
            if not data:
                self._eof = True
                self._feed_eof()
            elif self._state == _SWITCHED:
                self._buf += data
            elif self._state == _HEAD:
                self._buf += data
                self._run()
            elif self._state == _LENGTH:
                if not self._buf and len(data) < self._remaining:
                    self._events.append(data)      # all body, and not its end: no copy
                    self._remaining -= len(data)
                else:
                    self._buf += data
                    self._length()
            elif self._state == _CHUNKED:
                self._buf += data
                self._chunked_body()
            elif self._state == _BODY:
                self._conn.receive_data(data)
                self._run()
            else:  # _DONE
                self._trailing = True
        except ProtocolError as exc:
            self._error = exc
            self._state = _DEAD

    def next_event(self) -> ResponseEvent:
        """See ResponseParser.next_event."""
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return None

    def _run(self) -> None:
        """Parse heads (1xx, then the final one) and the body as far as the input goes."""
        while self._state == _HEAD:
            if not self._head():
                return
        if self._state == _LENGTH:
            self._length()
        elif self._state == _CHUNKED:
            self._chunked_body()
        elif self._state == _BODY:
            self._body()

    def _head(self) -> bool:
        """Frame and judge the next head; True when it was complete."""
        buf = self._buf
        if not buf:
            return False
        framing.check_first_byte(buf, 0, 502)
        end = framing.find_head_end(buf, 0, self._scan)
        if framing.size_error(buf, 0, end, self._limit):
            raise ProtocolError("response head too large", 502)
        if end == -1:
            self._scan = max(0, len(buf) - 2)
            return False
        head = reference_response_head(self._conn, bytes(buf[:end]), self._method,
                                       self._websocket)
        self._events.append(head)
        self._scan = 0
        if head.status == 101:             # only ever for a handshake (policy)
            del buf[:end]                  # the first bytes of the tunnel, if any
            self._state = _SWITCHED
            return False
        if head.status < 200:
            del buf[:end]
            return True
        if head.body == "length" or head.body == "none":
            del buf[:end]            # what follows the head: the body, then nothing
            self._remaining = head.content_length or 0 if head.body == "length" else 0
            self._state = _LENGTH
            return True
        if head.body == "chunked":
            del buf[:end]
            self._chunked = ChunkedDecoder(self._limit, 502)
            self._state = _CHUNKED
            return True
        if end < len(buf):
            self._conn.receive_data(bytes(buf[end:]))
        self._buf = bytearray()
        self._state = _BODY
        return True

    def _length(self) -> None:
        """Hand on the buffered bytes of a Content-Length body (or none), up to its end."""
        buf = self._buf
        remaining = self._remaining
        if remaining:
            take = min(remaining, len(buf))
            if take:
                self._events.append(bytes(buf[:take]))
                del buf[:take]
                remaining = self._remaining = remaining - take
            if remaining:
                return
        self._events.append(END)
        self._trailing = bool(buf)
        self._buf = bytearray()
        self._state = _DONE

    def _chunked_body(self) -> None:
        """Decode the buffered bytes of a chunked body, up to its end."""
        decoder = self._chunked
        assert decoder is not None
        buf = self._buf
        del buf[:decoder.decode(buf, 0, self._events.append)]
        if decoder.done:
            self._chunked = None
            self._events.append(END)
            self._trailing = bool(buf)
            self._buf = bytearray()
            self._state = _DONE

    def _body(self) -> None:
        """Move h11's close-delimited body events to the queue, up to END."""
        conn = self._conn
        events = self._events
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _from_h11(exc, 502) from None
            if isinstance(event, h11.Data):
                # A bytearray at run time, whatever h11's annotation says (the compiled
                # build checks annotations): read as Any, handed on as bytes.
                data: Any = cast(Any, event).data
                if data:
                    events.append(bytes(data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                assert event is h11.NEED_DATA, event
                return
        events.append(END)
        self._trailing = bool(conn.trailing_data[0])
        self._state = _DONE

    def _feed_eof(self) -> None:
        """The upstream closed: ends a close-delimited body, else the response is broken."""
        if self._state == _SWITCHED:
            return                         # the tunnel's business
        if self._state == _LENGTH or self._state == _CHUNKED:
            raise ProtocolError("upstream closed before the end of the response body", 502)
        if self._state == _BODY:
            self._conn.receive_data(b"")
            self._run()
        elif self._state == _HEAD:
            if self._seen:
                raise ProtocolError("upstream closed inside a response head", 502)
            raise ProtocolError("upstream closed the connection without responding", 502)
