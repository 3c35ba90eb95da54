"""A WebSocket tunnel: after a 101, the bytes of both connections relayed as they are.

Theory of operation
-------------------
Once the upstream has answered a WebSocket handshake with 101 and the gateway has sent that
head on (exchange.py), neither connection speaks HTTP any more. The gateway does not read
WebSocket frames: it copies bytes, so extensions, fragmentation, pings and close frames
pass untouched and cost no parsing.

``Tunnel.run`` relays in two greenlets, one per direction, each a loop of ``recv`` on one
side and a write on the other (``streams.send_all``: ``send``, then ``sendall`` for any
rest). Only those calls are made on the streams, so a plain gevent socket and a TLS socket
(``ssl.SSLSocket``, whose buffered records a ``select`` on the descriptor would miss) work
the same. The greenlet of the client's
connection waits for either pump to end, then stops the other one (``kill``) and returns:

- the first bytes of each direction are what the parsers read past the heads (the
  client's frames sent right behind its handshake, the upstream's right behind its 101),
  written before anything new is read, so nothing already received is lost;
- memory is bounded: each direction holds at most one ``recv`` (``RECV_SIZE``) while its
  ``sendall`` waits, and a side that does not read stops the other side's pump, so TCP
  pushes back on the sender instead of the gateway buffering for it;
- an end of stream, a reset or a TLS error on either side ends the tunnel: both
  connections are closed, since a WebSocket ends with a close frame exchanged inside the
  tunnel before TCP closes, and a half-open WebSocket has nothing left to say. Closing both
  is what the other side then sees (its FIN);
- the idle timeout (``timeouts.websocket_idle`` of the upstream) uses the connection's
  deadline, like every other wait on the request path (connection.py): each ``recv`` that
  brings bytes, either way, moves the deadline on, and when it passes the worker's sweeper
  raises ``TimeoutError`` in the waiting greenlet, which ends the tunnel;
- a write is bounded as every other write is: to the client by ``limits.send_timeout``,
  to the upstream by its ``timeouts.write``. The connection has one deadline, so it is
  the earliest of the idle one and those of the writes under way; a side that stops
  reading while the other keeps sending (pings, say, which move the idle deadline on)
  ends the tunnel when its write times out, instead of holding the connection forever;
- ``close`` ends it from outside (a draining worker at ``graceful_timeout``).

The caller (the exchange) closes the upstream connection and writes the access-log line
with the byte counts both ways; the client's connection closes when ``run`` returns.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import gevent
import gevent.event

from .streams import Stream, send_all

if TYPE_CHECKING:
    from .connection import DownstreamConnection

RECV_SIZE = 65536
_monotonic = time.monotonic

# Why a tunnel ended (``Tunnel.ended``).
CLIENT_STALLED = "client not reading"
UPSTREAM_STALLED = "upstream not reading"
CLIENT_CLOSED = "client closed"
UPSTREAM_CLOSED = "upstream closed"
CLIENT_BROKE = "client connection broke"
UPSTREAM_BROKE = "upstream connection broke"
IDLE = "idle timeout"
CLOSED = "closed by the gateway"


class Tunnel:
    """The relay of one upgraded connection (see the module docstring)."""

    __slots__ = ("conn", "upstream", "idle", "to_upstream", "to_client", "ended", "_done",
                 "_pumps", "_write_timeouts", "_idle_until", "_writing_until")

    def __init__(self, conn: DownstreamConnection, upstream: Stream, idle: float,
                 upstream_write_timeout: float) -> None:
        self.conn = conn                 # the client's connection (its stream, its deadline)
        self.upstream = upstream
        self.idle = idle                 # seconds without a byte either way
        self.to_upstream = 0             # bytes relayed client -> upstream
        self.to_client = 0               # bytes relayed upstream -> client
        self.ended = ""
        self._done = gevent.event.Event()
        self._pumps: list[gevent.Greenlet] = []
        # Per direction (0: to the upstream, 1: to the client): the longest a write may
        # take, and when the one under way must be done (0.0: none under way).
        self._write_timeouts = (upstream_write_timeout, conn.limits.send_timeout)
        self._writing_until = [0.0, 0.0]
        self._idle_until = 0.0

    def run(self, from_client: bytes, from_upstream: bytes) -> str:
        """Relay until one side closes, the idle timeout passes, or ``close``; returns why
        it ended. ``from_client``/``from_upstream``: bytes already read past the heads."""
        conn = self.conn
        self._idle_until = _monotonic() + self.idle
        self._arm()
        self._pumps = [gevent.spawn(self._pump, conn.sock, self.upstream, from_client, True),
                       gevent.spawn(self._pump, self.upstream, conn.sock, from_upstream,
                                    False)]
        try:
            self._done.wait()
        except TimeoutError:             # the sweeper's: idle, or a write took too long
            now = _monotonic()
            to_upstream, to_client = self._writing_until
            if 0.0 < to_client <= now:
                self.ended = CLIENT_STALLED
            elif 0.0 < to_upstream <= now:
                self.ended = UPSTREAM_STALLED
            else:
                self.ended = IDLE
        finally:
            conn.deadline = 0.0
            gevent.killall(self._pumps)
            # A pump woken by a read in the same loop turn as the kill may have moved the
            # deadline on before it died: nothing waits on it any more.
            conn.deadline = 0.0
        return self.ended

    def close(self) -> None:
        """End the tunnel from outside; ``run`` returns in its own greenlet."""
        if not self._done.is_set():
            self.ended = self.ended or CLOSED
            self._done.set()

    def _arm(self) -> None:
        """The connection's deadline: the earliest of the idle one and the writes'."""
        deadline = self._idle_until
        for until in self._writing_until:
            if 0.0 < until < deadline:
                deadline = until
        self.conn.deadline = deadline

    def _pump(self, source: Stream, sink: Stream, first: bytes, upstream_bound: bool) -> None:
        idle = self.idle
        direction = 0 if upstream_bound else 1
        write_timeout = self._write_timeouts[direction]
        writing_until = self._writing_until
        try:
            data = first
            while True:
                if data:
                    writing_until[direction] = _monotonic() + write_timeout
                    self._arm()
                    send_all(sink, data)
                    writing_until[direction] = 0.0
                    self._arm()
                    if upstream_bound:
                        self.to_upstream += len(data)
                    else:
                        self.to_client += len(data)
                data = source.recv(RECV_SIZE)
                if not data:
                    self.ended = self.ended or (CLIENT_CLOSED if upstream_bound
                                                else UPSTREAM_CLOSED)
                    return
                self._idle_until = _monotonic() + idle
                self._arm()
        except OSError:
            # Which side broke cannot be told from here (recv or send); the reading side
            # is the likelier one, and the access log only needs a hint.
            self.ended = self.ended or (CLIENT_BROKE if upstream_bound else UPSTREAM_BROKE)
        finally:
            self._done.set()
