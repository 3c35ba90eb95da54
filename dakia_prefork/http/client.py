"""The upstream HTTP/1.1 client: connect to a node, send a request, read its response.

Theory of operation
-------------------
One client for everything that talks to upstream nodes: the proxy's exchanges, the
health checker's probes and ``try_file``'s fetches. It reads responses with the response
parser of the worker's engine (h11 or httptools), so every byte an upstream sends is
judged the same way whichever part of the gateway asked for it.

- ``open_upstream`` opens a connection to a node (name lookup, TLS handshake) within the
  connect timeout and maps each way of failing to an ``UpstreamFailed`` with ``sent=False``
  (nothing of the request reached the node, so any request may be retried elsewhere).
  ``open_with`` does the same for a connection that someone else knows how to open (the
  ``try_file`` fetch gets the proxy's ``ctx.node_connect``, or a plain connection to a
  label): a fresh connection outside the pool.
- ``send`` writes request bytes; on a pooled connection that the upstream closed while it
  sat idle (``replayable``) a failure is ``StaleConnection``, for the caller to retry once
  on a fresh connection.
- ``ResponseReader`` yields the events of one response. ``pending`` is what the parser
  already has (``None``: it needs bytes) and ``fill`` receives once; the proxy calls them
  separately so that it can flush what it owes the client before it blocks, and
  ``next_event`` is both for callers with nothing to flush. Errors are mapped on the way
  out: a timeout is a 504, a reset or broken framing a 502, and an empty first read on a
  reused connection is ``StaleConnection`` (the upstream's idle timer closed it).

``request`` is the whole exchange for callers that want a response and are not streaming
it anywhere: the health checker and ``fetch``.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING, Callable

import gevent

from ..message.heads import END, Headers, ProtocolError, ResponseEvent, ResponseHead
from ..message.wire import request_head
from .errors import LookupTimeout, StaleConnection, UpstreamFailed
from .streams import send_all
from .upstream import Node, Resolver, UpstreamConnection, open_connection

if TYPE_CHECKING:
    from .engines import Engine

RECV_SIZE = 65536
_BROKEN_RESPONSE = b"the upstream sent an invalid or truncated response"
_BROKEN_CONNECTION = b"the upstream broke the connection"


def open_upstream(node: Node, timeout: float, resolver: Resolver | None) -> UpstreamConnection:
    """A connection to ``node`` within ``timeout`` seconds; raises UpstreamFailed."""
    # A name lookup is bounded by the connect timeout too (only the first one of a name
    # waits; refreshes run aside).
    timer = gevent.Timeout.start_new(timeout, LookupTimeout) if node.named else None
    try:
        sock = _opened(lambda left: open_connection(node, left, resolver), timeout)
    finally:
        if timer is not None:
            timer.close()
    return UpstreamConnection(sock, node.pool_key, node.tls)


def open_with(opener: Callable[[float], socket.socket], timeout: float) -> UpstreamConnection:
    """The connection that ``opener(timeout)`` opens, its failures mapped as in
    ``open_upstream`` (raises UpstreamFailed, ``sent=False``). It has no pool key: close it
    after the exchange."""
    return UpstreamConnection(_opened(opener, timeout), None)


def _opened(opener: Callable[[float], socket.socket], timeout: float) -> socket.socket:
    """``opener(timeout)``, each way of failing mapped to an ``UpstreamFailed`` with
    ``sent=False``: nothing of a request reached the node."""
    try:
        return opener(timeout)
    except (TimeoutError, LookupTimeout):
        raise UpstreamFailed(504, "connect timed out", sent=False) from None
    except socket.gaierror as exc:
        raise UpstreamFailed(502, f"cannot resolve the node's name: {exc}",
                             b"the upstream's name does not resolve", sent=False) from None
    except ssl.SSLError as exc:
        raise UpstreamFailed(502, f"TLS handshake failed: {exc}",
                             b"the TLS handshake with the upstream failed", sent=False) from None
    except OSError as exc:
        raise UpstreamFailed(502, f"connect failed: {exc}",
                             b"the upstream refused the connection", sent=False) from None


def send(conn: UpstreamConnection, data: bytes, replayable: bool = False) -> None:
    """Write ``data`` to the upstream; the connection is closed when this raises."""
    if not data:
        return
    try:
        send_all(conn.sock, data)
    except TimeoutError:
        conn.close()
        raise UpstreamFailed(504, "write timed out") from None
    except OSError as exc:
        conn.close()
        if replayable:
            raise StaleConnection() from None
        raise UpstreamFailed(502, f"send failed: {exc}", _BROKEN_CONNECTION) from None


class ResponseReader:
    """The events of one response on ``conn`` (see the module docstring)."""

    __slots__ = ("conn", "parser", "replayable", "deadline")

    def __init__(self, conn: UpstreamConnection, engine: Engine, method: bytes,
                 max_header_bytes: int, replayable: bool = False,
                 deadline: float | None = None, websocket: bool = False) -> None:
        self.conn = conn
        # ``websocket``: the request was a WebSocket handshake, which a 101 may answer.
        self.parser = engine.response_parser(method, max_header_bytes, websocket)
        self.replayable = replayable      # nothing received yet on a reused connection
        self.deadline = deadline          # one deadline for the whole response, if set

    def pending(self) -> ResponseEvent:
        """The next event the parser already has, or None when it needs bytes."""
        try:
            return self.parser.next_event()
        except ProtocolError as exc:
            raise UpstreamFailed(502, f"invalid response: {exc}", _BROKEN_RESPONSE) from None

    def fill(self) -> None:
        """Receive once and feed the parser (the socket's timeout applies)."""
        sock = self.conn.sock
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise UpstreamFailed(504, "read timed out")
            self.conn.set_timeout(left)
        try:
            data = sock.recv(RECV_SIZE)
        except TimeoutError:
            raise UpstreamFailed(504, "read timed out") from None
        except OSError as exc:
            if self.replayable:
                raise StaleConnection() from None
            raise UpstreamFailed(502, f"read failed: {exc}", _BROKEN_RESPONSE) from None
        if self.replayable:
            if not data:
                raise StaleConnection()
            self.replayable = False
        self.parser.feed(data)

    def next_event(self) -> ResponseEvent:
        """The next event, receiving as needed (never None)."""
        event = self.pending()
        while event is None:
            self.fill()
            event = self.pending()
        return event

    def final_head(self) -> ResponseHead:
        """The final response head, skipping informational (1xx) ones."""
        while True:
            event = self.next_event()
            if isinstance(event, ResponseHead) and event.status >= 200:
                return event
            if not isinstance(event, ResponseHead):
                raise UpstreamFailed(502, f"unexpected {event!r} before the response head",
                                     _BROKEN_RESPONSE)

    def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body; True if it ended within ``limit`` bytes and
        the connection may be reused."""
        seen = 0
        try:
            while True:
                event = self.next_event()
                if event is END:
                    return not self.parser.trailing_data
                if isinstance(event, bytes):
                    seen += len(event)
                    if seen > limit:
                        return False
        except (UpstreamFailed, StaleConnection):
            return False


def request(conn: UpstreamConnection, engine: Engine, method: bytes, target: bytes,
            headers: Headers, timeout: float, max_header_bytes: int = 65536,
            body: bytes = b"") -> ResponseReader:
    """Send one request (with ``Content-Length`` when there is a body) and return the reader
    positioned at its response; ``timeout`` bounds the whole exchange from now."""
    deadline = time.monotonic() + timeout
    conn.set_timeout(timeout)
    framed = list(headers)
    if body or method in (b"POST", b"PUT", b"PATCH"):
        framed.append((b"content-length", b"%d" % len(body)))
    send(conn, request_head(method, target, framed) + body)
    return ResponseReader(conn, engine, method, max_header_bytes, deadline=deadline)
