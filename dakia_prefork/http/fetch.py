"""One GET to an upstream node, its body written to a file as it arrives (for ``try_file``).

The proxy streams an upstream's body straight to the client and gives interceptors only
the head, so an interceptor that must keep the body fetches it itself. This is that fetch,
on the upstream client (``http/client.py``) and so on the worker's engine: the response is
read by the same parser, with the same strictness, as the proxy's own. One request on a
fresh connection (``Connection: close``; a cache miss is rare enough not to need the pool),
one overall deadline from the connect to the end of the body, and limits on what is kept:

- a 200 response goes to a ``sink`` (an ``AtomicFile``) up to ``max_size`` bytes; a
  declared Content-Length over the limit stops before any body is read, and a chunked
  body that grows past it stops when it does (``Fetched.too_large``);
- any other status is kept in memory up to ``SMALL_BODY`` bytes so it can be relayed to
  the client as it is; a bigger one is ``too_large`` too.

An upstream that cannot be reached or breaks the exchange (refused, reset, an invalid or
truncated response) is a ``FetchError(502)``, one that runs out of time a
``FetchError(504)``. A sink that fails (a full disk) raises its own OSError: that is the
cache's failure, not the upstream's.

Interceptors do not import this module: a worker lends ``Fetcher(engine_of)`` and
``connect_node`` to them through ``interceptors.resources.Resources`` (worker/serve.py),
so the master, which builds every chain to check a config, never loads ``http/``. The
result and error types are those of resources.py.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable

from ..interceptors.resources import Fetched, FetchError, OpenSocket, Sink
from ..message.heads import END, Headers
from ..message.wire import end_to_end
from .client import open_with, request
from .engines import Engine
from .errors import UpstreamFailed
from .upstream import Address, UpstreamConnection, connect

SMALL_BODY = 65536
_MAX_HEAD = 65536

__all__ = ["SMALL_BODY", "FetchError", "Fetched", "Fetcher", "address_of", "connect_node",
           "fetch"]


def address_of(label: str) -> Address:
    """The address of a node from its label (``host:port``, ``[v6]:port``, ``unix:/p``)."""
    if label.startswith("unix:"):
        return ("unix", label[len("unix:"):], 0)
    host, _, port = label.rpartition(":")
    return ("tcp", host.removeprefix("[").removesuffix("]"), int(port))


def connect_node(label: str, timeout: float) -> socket.socket:
    """A plain connection to the node labelled ``label`` (``Resources.connect``)."""
    return connect(address_of(label), timeout)


class Fetcher:
    """``fetch`` on the engine ``engine_of()`` gives at each call: what a worker lends as
    ``Resources.fetch`` (a ``Fetch``), with the engine of the config version it serves now,
    so ``http_parser`` follows a reload."""

    __slots__ = ("_engine_of",)

    def __init__(self, engine_of: Callable[[], Engine]) -> None:
        self._engine_of = engine_of

    def __call__(self, open_socket: OpenSocket, target: bytes, headers: Headers,
                 timeout: float, max_size: int, sink: Callable[[], Sink]) -> Fetched:
        """See ``fetch``."""
        return fetch(self._engine_of(), open_socket, target, headers, timeout, max_size, sink)

    def __repr__(self) -> str:
        return f"Fetcher({self._engine_of()!r})"


def fetch(engine: Engine, open_socket: OpenSocket, target: bytes, headers: Headers,
          timeout: float, max_size: int, sink: Callable[[], Sink]) -> Fetched:
    """GET ``target`` with ``headers`` (a Host among them) on the connection that
    ``open_socket(timeout)`` opens (the node's own, resolver and TLS, when the proxy gives
    it), reading the response with ``engine``; ``timeout`` bounds it all. Raises FetchError
    (and a sink's OSError)."""
    deadline = time.monotonic() + timeout
    try:
        conn = open_with(open_socket, timeout)
    except UpstreamFailed as exc:
        raise FetchError(exc.status, str(exc)) from None
    try:
        return _exchange(conn, engine, target, headers, deadline, max_size, sink)
    except UpstreamFailed as exc:
        if exc.status == 504:
            raise FetchError(504, "the upstream did not answer in time") from None
        raise FetchError(502, f"the upstream broke the exchange: {exc}") from None
    finally:
        conn.close()


def _exchange(conn: UpstreamConnection, engine: Engine, target: bytes, headers: Headers,
              deadline: float, max_size: int, sink: Callable[[], Sink]) -> Fetched:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UpstreamFailed(504, "connect took the whole timeout")
    reader = request(conn, engine, b"GET", target,
                     [*end_to_end(headers), (b"connection", b"close")], left, _MAX_HEAD)
    head = reader.final_head()
    fetched = Fetched(head.status, end_to_end(head.headers))
    limit = max_size if head.status == 200 else SMALL_BODY
    # Declared, whatever the framing (a 304 or a HEAD's too): as h11's client was read.
    if head.content_length is not None and head.content_length > limit:
        fetched.too_large = True
        return fetched
    out = sink() if head.status == 200 else None
    kept = bytearray()
    size = 0
    while True:
        event = reader.next_event()
        if event is END:
            fetched.stored = out is not None
            fetched.body = bytes(kept)
            return fetched
        if not isinstance(event, bytes):        # a parser never yields another head here
            raise UpstreamFailed(502, f"unexpected {event!r} in the response body")
        size += len(event)
        if size > limit:
            fetched.too_large = True
            return fetched
        if out is not None:
            out.write(event)
        else:
            kept += event
