"""One GET to an upstream node, its body written to a file as it arrives (for ``try_file``).

The proxy streams an upstream's body straight to the client and gives interceptors only
the head, so an interceptor that must keep the body fetches it itself. This is a small,
strict HTTP/1.1 client on h11: one request on a fresh connection (``Connection: close``;
a cache miss is rare enough not to need the pool), one overall deadline, and limits on
what is kept:

- a 200 response goes to a ``sink`` (an ``AtomicFile``) up to ``max_size`` bytes; a
  declared Content-Length over the limit stops before any body is read, and a chunked
  body that grows past it stops when it does (``Fetched.too_large``);
- any other status is kept in memory up to ``SMALL_BODY`` bytes so it can be relayed to
  the client as it is; a bigger one is ``too_large`` too.

Interceptors do not import this module: a worker lends ``fetch`` and ``connect_node`` to
them through ``interceptors.resources.Resources`` (worker/serve.py), so the master, which
builds every chain to check a config, never loads h11 or ``http/``. The result and error
types are those of resources.py.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

import h11

from ..interceptors.resources import Fetched, FetchError, OpenSocket, Sink
from ..message.heads import Headers
from ..message.wire import end_to_end
from .upstream import Address, connect

SMALL_BODY = 65536
_MAX_HEAD = 65536

__all__ = ["SMALL_BODY", "FetchError", "Fetched", "address_of", "connect_node", "fetch"]


def address_of(label: str) -> Address:
    """The address of a node from its label (``host:port``, ``[v6]:port``, ``unix:/p``)."""
    if label.startswith("unix:"):
        return ("unix", label[len("unix:"):], 0)
    host, _, port = label.rpartition(":")
    return ("tcp", host.removeprefix("[").removesuffix("]"), int(port))


def connect_node(label: str, timeout: float) -> socket.socket:
    """A plain connection to the node labelled ``label`` (``Resources.connect``)."""
    return connect(address_of(label), timeout)


def fetch(open_socket: OpenSocket, target: bytes, headers: Headers,
          timeout: float, max_size: int, sink: Callable[[], Sink]) -> Fetched:
    """GET ``target`` with ``headers`` (a Host among them) on the connection that
    ``open_socket(timeout)`` opens: the node's own (resolver, TLS) when the proxy gives it."""
    deadline = time.monotonic() + timeout
    try:
        sock = open_socket(timeout)
    except TimeoutError:
        raise FetchError(504, "connect timed out") from None
    except OSError as exc:
        raise FetchError(502, f"connect failed: {exc}") from None
    try:
        return _exchange(sock, target, headers, deadline, max_size, sink)
    except TimeoutError:
        raise FetchError(504, "the upstream did not answer in time") from None
    except (OSError, h11.ProtocolError) as exc:
        raise FetchError(502, f"the upstream broke the exchange: {exc}") from None
    finally:
        sock.close()


def _exchange(sock: socket.socket, target: bytes, headers: Headers, deadline: float,
              max_size: int, sink: Callable[[], Sink]) -> Fetched:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    request = h11.Request(method=b"GET", target=target,
                          headers=[*end_to_end(headers), (b"connection", b"close")])
    _settimeout(sock, deadline)
    sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
    fetched: Fetched | None = None
    out: Sink | None = None
    kept = bytearray()
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            _settimeout(sock, deadline)
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            fetched = Fetched(event.status_code, end_to_end(list(event.headers)))
            declared = _content_length(event.headers)
            limit = max_size if fetched.status == 200 else SMALL_BODY
            if declared is not None and declared > limit:
                fetched.too_large = True
                return fetched
            if fetched.status == 200:
                out = sink()
        elif isinstance(event, h11.Data):
            assert fetched is not None
            size += len(event.data)
            if size > (max_size if out is not None else SMALL_BODY):
                fetched.too_large = True
                return fetched
            if out is not None:
                out.write(event.data)
            else:
                kept += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert fetched is not None
            fetched.stored = out is not None
            fetched.body = bytes(kept)
            return fetched
        elif isinstance(event, h11.ConnectionClosed):
            raise OSError("connection closed before the response ended")
        # h11.InformationalResponse (1xx): wait for the final response.


def _settimeout(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError()
    sock.settimeout(remaining)


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)      # h11 has validated it
    return None
