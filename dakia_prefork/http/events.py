"""The parser seam: the events every HTTP/1.1 engine produces, and its errors.

Theory of operation
-------------------
A parser is sans-IO (as in h11 and hypercorn): bytes go in with ``feed()``, events come out
of ``next_event()``. The connection code never sees which engine produced an event, so the
two engines (``h11``, the strict reference, and ``httptools``, llhttp) must produce the same
events and take the same accept/reject decision for every input. Where llhttp is more
lenient than h11 the httptools engine rejects on its own (see ``engines/validate.py``).

The event stream of a request parser, for each message on the connection::

    RequestHead, then zero or more ``bytes`` (body data, never empty), then END

and after the last message, once the peer has closed cleanly between messages, ``CLOSED``.
``None`` means "feed me more bytes". Pipelined requests come one after the other in the same
stream; a caller that is still answering one request simply does not ask for the next event.

A response parser is made per response (it must know the request method, for HEAD), and
yields zero or more informational heads (status 100..199) before the final ``ResponseHead``,
then body ``bytes``, then END. A close-delimited body ends when ``feed(b"")`` signals EOF.

Errors are delivered in stream order: ``feed()`` keeps a ProtocolError behind the events
that precede it, and ``next_event()`` raises it once those are taken, so the good requests
of a pipeline are served before the bad one is answered.

Body data is handed over as ``bytes`` objects rather than wrapped in an event class: the body
path is the hot path and an allocation per chunk is what we avoid.

Header names are lower-cased ``bytes``; values are ``bytes`` with surrounding whitespace
stripped; order and repetition are kept.

Protocol switching (WebSocket): after the END of a head with ``upgrade`` set, a request
parser pauses: it keeps what it is fed and yields nothing more until the caller says how
the upstream answered, ``resume()`` (not a 101: parse on, as HTTP) or ``upgraded()`` (a
101: take the bytes received past the handshake, for the tunnel; the parser is done). A
response parser made with ``websocket=True`` may yield a 101 head; it is the last event,
and ``upgraded()`` then returns the bytes received past it.
"""
from __future__ import annotations

from typing import Literal, Protocol

from ..message.heads import (CLOSED, END, Headers, ProtocolError, RequestEvent, RequestHead,
                             ResponseEvent, ResponseHead)

__all__ = ["CLOSED", "END", "EngineName", "Headers", "Limits", "ProtocolError", "RequestEvent",
           "RequestHead", "RequestParser", "ResponseEvent", "ResponseHead", "ResponseParser"]


class RequestParser(Protocol):
    """Downstream side: one per client connection, across all its requests."""

    def feed(self, data: bytes) -> None:
        """Hand over received bytes; ``b""`` means the peer closed (EOF).

        Parses at once, but never raises ProtocolError: an error is kept for next_event()
        behind the events before it. Raises RuntimeError for bytes fed after EOF.
        """

    def next_event(self) -> RequestEvent:
        """Return the next event, or None when more bytes are needed.

        Raises ProtocolError once the events before it are taken. After an error the parser
        is dead (it raises again on every call): the connection must answer the error and
        close.
        """

    def resume(self) -> None:
        """After a WebSocket handshake that got no 101: parse what was kept as the next
        request (see the module docstring). Does nothing when not paused."""

    def upgraded(self) -> bytes:
        """After a WebSocket handshake answered 101: the bytes received past it, not
        parsed; the parser is done (feeding it more is a RuntimeError)."""


class ResponseParser(Protocol):
    """Upstream side: one per response."""

    def feed(self, data: bytes) -> None:
        """As RequestParser.feed; errors carry status 502."""

    def next_event(self) -> ResponseEvent:
        """As RequestParser.next_event."""

    @property
    def trailing_data(self) -> bool:
        """True when bytes arrived after END: the connection must not be reused."""

    def upgraded(self) -> bytes:
        """After a 101 (``websocket`` parsers only): the bytes received past its head."""


class Limits(Protocol):
    """What a parser needs to know of the configured limits."""

    max_header_bytes: int      # request line + headers; over it: 431 (414 for the line alone)


EngineName = Literal["h11", "httptools"]
