"""One client connection: read requests, hand each to an ``Exchange``, answer in order.

Theory of operation
-------------------
A ``DownstreamConnection`` runs in its own greenlet and handles the requests of one client
connection strictly one after the other: a pipelined request is not even parsed until the
previous response has been written, so responses go out in request order by construction.
The loop here owns what lasts across requests (the stream, the parser, the count of
requests, whether the connection is idle); everything about one request lives in its
``Exchange`` (exchange.py).

Each request runs on one config version (``Runtime``), read once when its head has arrived
and handed to its exchange; its limits are the client's timeouts (``self.limits``), so a
reload reaches connections that are already open: the header timeout while a head arrives,
the keep-alive timeout between requests, the body timeout inside a body, the send timeout
for every write; the exchange adds the upstream's write and read timeouts.

Timeouts are deadlines, not socket timeouts: before each wait the connection records when
it must end (``deadline``, 0 when not waiting), and the worker's one sweeper greenlet
(``expire_waits``, every ``SWEEP_SECONDS``) has a greenlet whose deadline has passed raise
``TimeoutError`` where it waits, as a gevent ``Timeout`` would. With socket timeouts gevent
arms and disarms a timer for every wait that blocks, and the profile of a busy worker had
a tenth of its time there. The sockets themselves have no timeout, so a deadline is
enforced within ``SWEEP_SECONDS`` of its time.

A request head has one deadline, set when its first byte arrives
(``limits.client_header_timeout`` from then, however many reads the head takes), so a client
that sends a byte every few seconds cannot keep its slot: at the deadline it is answered 408
and dropped. A body has a deadline per read (``client_body_timeout`` bounds its gaps), also
answered 408 while no response head has gone out. The wait for the first byte of a head is
the keep-alive timeout (the header timeout on a new connection); when it passes the
connection just closes, since there is no request to answer.

On a listener with ``proxy_protocol: true`` the first ``run`` reads a PROXY protocol header
(proxy_protocol.py) before anything else, within the header timeout in all; its address
becomes the connection's ``peer``, and a connection without a valid one is closed unanswered.

Idle keep-alive connections are parked: a greenlet waiting in ``recv`` keeps about 8 KiB
alive (its Python data stack and saved C stack), more than the rest of the connection
together. So the sweeper also has a connection that has waited ``PARK_AFTER`` seconds for
its next request, with nothing of it received, raise ``Parked`` where it waits: ``run``
returns with ``parked`` set, the greenlet ends, and the worker watches the socket instead
(worker/serve.py), calling ``run`` again in a new greenlet when the client sends or closes.
Nothing is lost: the wait was for the first byte of a request, and the parser keeps its
state. Only long-idle connections pay for the hand-over, never the request path.

Errors before a response head has gone out become a short error response (400, 404, 413,
502, 504); after that the only honest signal left is to close the connection (``ClientGone``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import gevent

from ..message import wire
from ..message.heads import CLOSED, END, ProtocolError, RequestEvent, RequestHead
from . import proxy_protocol
from .errors import ClientGone
from .exchange import Exchange
from .streams import Stream, send_all

if TYPE_CHECKING:
    from ..worker.context import Limits, ListenerInfo, WorkerContext

log = logging.getLogger("dakia.proxy")

RECV_SIZE = 65536
# A body this small is read and dropped after an early answer, so the connection stays
# usable; a bigger one makes us close instead of reading what nobody wants.
DISCARD_LIMIT = 65536
# How often the worker looks for waits past their deadline (the precision of timeouts).
SWEEP_SECONDS = 0.25
# A keep-alive connection idle this long leaves its greenlet (see the module docstring).
PARK_AFTER = 0.5
_monotonic = time.monotonic
_ALLOW_PROXIED = [(b"allow", b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE")]


class Parked(Exception):
    """Thrown into a connection's greenlet that waits, idle, for its next request."""


class DownstreamConnection:
    __slots__ = ("ctx", "sock", "peer", "peer_bytes", "listener", "parser", "limits",
                 "requests", "idle", "idle_since", "parked", "linger", "deadline", "greenlet",
                 "proxy_header", "client_subject", "_eof")

    def __init__(self, ctx: WorkerContext, sock: Stream, peer: str,
                 listener: ListenerInfo) -> None:
        self.ctx = ctx
        self.sock = sock
        self.peer = peer                 # the client's IP, "" for a unix socket
        self.peer_bytes = peer.encode("latin-1")
        self.listener = listener
        self.limits: Limits = ctx.limits
        self.parser = ctx.engine.request_parser(self.limits.max_header_bytes)
        self.requests = 0
        self.idle = False       # waiting for the next request with nothing of it received
        self.idle_since = 0.0   # when that wait began
        self.parked = False     # ``run`` returned to wait for the client outside a greenlet
        self.linger = False     # answered an error: drain what the client still sends
        self.deadline = 0.0      # when the current wait must end; 0.0: not waiting
        self.greenlet: Any = None   # the greenlet serving the connection (``run``'s)
        # A PROXY protocol header comes first on this listener (read by the first ``run``).
        gateway = ctx.runtime.gateways.get(listener.gateway)
        self.proxy_header = gateway is not None and listener.label in gateway.proxy_protocol
        # The verified client certificate's subject on an mTLS listener, else "" (set by
        # the worker after the handshake: tls/handshake.py).
        self.client_subject = ""
        self._eof = False

    def run(self) -> None:
        """Serve requests until the connection ends, or until it is parked (``parked``
        set: call ``run`` again when the socket is readable)."""
        ctx = self.ctx
        self.greenlet = gevent.getcurrent()
        self.parked = False
        if self.proxy_header:
            self.proxy_header = False
            if not self.read_proxy_header(ctx.limits.client_header_timeout):
                return
        while True:
            self.limits = limits = ctx.limits
            if self.requests and not self.idle:
                self.idle = True
                self.idle_since = _monotonic()
            try:
                header_timeout = limits.client_header_timeout
                event = self.next_head(limits.keepalive_timeout if self.requests
                                       else header_timeout, header_timeout)
                if event is END:
                    # The end of a body-less request answered before: body readers consume
                    # their own END, so only these reach the connection loop.
                    event = self.next_head(limits.keepalive_timeout, header_timeout)
            except ProtocolError as exc:
                sent = self.send_error(exc.status, str(exc))
                ctx.count_unrouted(self.listener.gateway, exc.status, sent)
                return
            except ClientGone:
                return
            except Parked:
                self.parked = True
                self.greenlet = None
                return
            self.idle = False
            if event is CLOSED or not isinstance(event, RequestHead):
                return
            self.requests += 1
            # The request runs on the version current when its head arrived, limits and
            # all, whatever a reload swaps in meanwhile.
            runtime = ctx.runtime
            self.limits = runtime.limits
            exchange = Exchange(self, event, runtime)
            try:
                keep_alive = exchange.run()
            except ClientGone:
                return
            except ProtocolError as exc:
                # The request body broke its framing. Every path that reads a body does so
                # before writing a response head, so the client can still get the error.
                sent = self.send_error(exc.status, str(exc))
                ctx.access(exchange, exc.status, sent)
                return
            if not keep_alive:
                # Not `or ctx.draining`: a response that went out without Connection: close
                # promised the client this connection. Its next request gets the close;
                # closing now would race that request, already on its way.
                return
            if event.upgrade:
                # A WebSocket handshake answered without a 101: the parser paused after
                # it (what follows might not have been HTTP); it is HTTP after all.
                self.parser.resume()

    def read_proxy_header(self, timeout: float) -> bool:
        """Read the PROXY protocol header (proxy_protocol.py) within ``timeout`` seconds in
        all and take the client's address from it; False (close, say nothing) when the
        connection does not start with a valid one."""
        data = b""
        deadline = _monotonic() + timeout
        while True:
            try:
                parsed = proxy_protocol.parse(data)
            except proxy_protocol.ProxyHeaderError as exc:
                log.info("client %s: %s; closing", self.peer or "unix socket", exc)
                return False
            if parsed is not None:
                break
            self.deadline = deadline
            try:
                chunk = self.sock.recv(proxy_protocol.MAX_HEADER - len(data))
            except OSError:       # the deadline's TimeoutError included
                log.info("client %s: no PROXY protocol header in time", self.peer
                         or "unix socket")
                return False
            finally:
                self.deadline = 0.0
            if not chunk:
                return False
            data += chunk
        consumed, address = parsed
        if address is not None:
            self.peer = address
            self.peer_bytes = address.encode("latin-1")
        if len(data) > consumed:
            self.parser.feed(data[consumed:])
        return True

    def next_head(self, wait: float, header_timeout: float) -> RequestEvent:
        """The next event between requests (a head, CLOSED), reading as needed: ``wait``
        bounds the wait for its first byte (nothing lost if it passes: the connection just
        closes), then ``header_timeout`` the whole head from that byte on, one deadline
        however many reads it takes (a client that drips its head gets 408)."""
        parser = self.parser
        event = parser.next_event()
        if event is None:
            self._receive(_monotonic() + wait, 0)
            event = parser.next_event()
            if event is None:
                deadline = _monotonic() + header_timeout
                while event is None:
                    self._receive(deadline, 408)
                    event = parser.next_event()
        return event

    def next_event(self, timeout: float) -> RequestEvent:
        """The next event of a request body, reading from the socket as needed; each read
        is bounded by ``timeout`` (``client_body_timeout`` bounds the gaps in a body) and
        one past it is a 408."""
        parser = self.parser
        event = parser.next_event()
        while event is None:
            self._receive(_monotonic() + timeout, 408)
            event = parser.next_event()
        return event

    def _receive(self, deadline: float, timed_out: int) -> None:
        """One read into the parser, ended at ``deadline``: then a ``ProtocolError`` with
        status ``timed_out`` (the client is answered and dropped), or ``ClientGone`` when it
        is 0 (nothing to answer: an idle connection just closes)."""
        if self._eof:
            raise ClientGone()
        self.deadline = deadline
        try:
            data = self.sock.recv(RECV_SIZE)
        except TimeoutError:      # the sweeper's, at the deadline
            if timed_out:
                raise ProtocolError("the client was too slow to send its request",
                                    timed_out) from None
            raise ClientGone() from None
        except OSError:           # resets
            raise ClientGone() from None
        finally:
            self.deadline = 0.0
        self.idle = False
        if not data:
            self._eof = True
        self.parser.feed(data)

    def write(self, data: bytes) -> None:
        self.deadline = _monotonic() + self.limits.send_timeout
        try:
            send_all(self.sock, data)
        except OSError:
            raise ClientGone() from None
        finally:
            self.deadline = 0.0

    def expire(self) -> None:
        """Raise ``TimeoutError`` in the connection's greenlet if its wait is past its
        deadline. Runs in the hub (see ``expire_waits``), where gevent's own timers throw
        too; the deadline is checked again here, since the wait may have ended since."""
        deadline = self.deadline
        if 0.0 < deadline <= _monotonic() and self.greenlet is not None:
            self.deadline = 0.0
            self.greenlet.throw(TimeoutError("timed out"))

    def park(self) -> None:
        """Raise ``Parked`` in the connection's greenlet if it still waits, idle, for its
        next request. Runs in the hub, like ``expire``."""
        if self.idle and self.deadline > 0.0 and self.greenlet is not None:
            self.greenlet.throw(Parked())

    def send_error(self, status: int, message: str) -> int:
        """Answer a broken request and mark the connection for closing; the body's size."""
        body = b"%d %s\n" % (status, wire.REASONS.get(status, b"Error"))
        log.info("client %s: %d %s", self.peer, status, message)
        self.linger = True
        try:
            # The one 405 here is CONNECT's (the engines' policy), and a 405 must say what
            # is allowed (RFC 9110 15.5.6): every method but CONNECT goes upstream.
            self.write(wire.simple_response(status, body, close=True,
                                            extra=_ALLOW_PROXIED if status == 405 else None))
        except ClientGone:
            pass
        return len(body)

    def discard_body(self) -> bool:
        """Read and drop a request body up to the discard limit; False if it was bigger."""
        seen = 0
        timeout = self.limits.client_body_timeout
        while True:
            event = self.next_event(timeout)
            if event is END:
                return True
            if isinstance(event, bytes):
                seen += len(event)
                if seen > DISCARD_LIMIT:
                    return False


def expire_waits(connections: Iterable[DownstreamConnection], now: float) -> tuple[int, int]:
    """Have every connection whose wait is past its deadline time out, and every one idle
    for ``PARK_AFTER`` be parked (from the hub, on its next turn); (how many expired, how
    many parked). The worker's sweeper calls this every ``SWEEP_SECONDS``."""
    run_callback = gevent.get_hub().loop.run_callback
    expired = parked = 0
    park_before = now - PARK_AFTER
    for conn in connections:
        deadline = conn.deadline
        if deadline <= 0.0:
            continue
        if deadline <= now:
            run_callback(conn.expire)
            expired += 1
        elif conn.idle and conn.idle_since <= park_before:
            run_callback(conn.park)
            parked += 1
    return expired, parked
