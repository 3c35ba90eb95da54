"""What a worker lends its interceptors: shared-memory tables, an HTTP client, long-lived
per-worker objects.

An interceptor is built from its config entry alone (``__init__``), in the master's checks
as in every worker, so building stays pure. What only a running worker has is handed over
afterwards, once per chain, by ``Interceptor.attach(resources, ident)``:

- ``buckets``: the token-bucket table in shared memory (``shm.buckets.BucketTable``), the
  same for every worker of the master, so a limit is exact across workers;
- ``fetch``: one GET to an upstream node, its body written to a sink as it arrives, a
  :class:`Fetch` (``try_file`` stores responses with it). The worker's is
  ``http.fetch.Fetcher(engine_of)``: the upstream client of ``http/client.py`` reading the
  response with the worker's own engine, so a fetched response is judged as the proxy
  judges the same bytes. The engine is bound in the worker, not passed by the caller: an
  interceptor never names one;
- ``connect``: a plain connection to a node by its label (``host:port``, ``[v6]:port``,
  ``unix:/path``), for when the proxy gave no ``ctx.node_connect``, a :class:`Connect`;
- ``metrics``: the Prometheus exposition of this master's metrics, as bytes
  (``metrics.exposition``, bound in the worker to its segments and config version), for
  the ``metrics`` interceptor;
- ``keep(key, make)``: an object that outlives config versions, made once per worker on
  first use (a connection pool: a reload builds new chains but must not open new pools).

Outside a worker (``dakia-master check``, the master's checks, unit tests that build a chain
without shared memory) ``attach`` gets an empty ``Resources``: ``buckets``, ``fetch`` and
``connect`` are None (and so is ``metrics``). That is why the HTTP client comes from here and not from an import:
the master builds every chain and must never load ``http/`` (DESIGN.md, "Directions").

The types of what is lent (:class:`Fetched`, :class:`FetchError`, :class:`Sink`) live here
too, so an interceptor names them without importing the code behind them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Protocol, TypeVar

if TYPE_CHECKING:
    import socket

    from ..message.heads import Headers
    from ..shm.buckets import BucketTable

T = TypeVar("T")

OpenSocket = Callable[[float], "socket.socket"]
"""Opens a connection within ``timeout`` seconds (raises OSError, TimeoutError)."""


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


class FetchError(Exception):
    """The upstream could not be reached or broke the exchange; ``status`` is what the
    client should get (502, or 504 for a timeout)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Fetched:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""              # a non-200 body, when small enough to relay
    stored: bool = False           # a 200 body went to the sink, complete
    too_large: bool = False        # over the limits: nothing usable was kept


class Fetch(Protocol):
    def __call__(self, open_socket: OpenSocket, target: bytes, headers: Headers,
                 timeout: float, max_size: int, sink: Callable[[], Sink]) -> Fetched:
        """GET ``target`` with ``headers`` (a Host among them) on the connection that
        ``open_socket(timeout)`` opens, within ``timeout`` seconds in all. A 200 body goes
        to ``sink()`` (made when the 200 arrives) up to ``max_size`` bytes; another status
        keeps a small body in ``Fetched.body``. Raises FetchError (502: unreachable, or an
        invalid or truncated response; 504: out of time); a sink's own OSError (a full
        disk) goes through as it is."""
        ...


class Connect(Protocol):
    def __call__(self, label: str, timeout: float) -> socket.socket:
        """A plain connection to the node labelled ``label``; raises OSError."""
        ...


class Resources:
    """The per-worker resources of interceptors; one instance for the worker's life."""

    def __init__(self, buckets: BucketTable | None = None, fetch: Fetch | None = None,
                 connect: Connect | None = None,
                 metrics: Callable[[], bytes] | None = None) -> None:
        self.buckets = buckets
        self.fetch = fetch
        self.connect = connect
        self.metrics = metrics
        self._kept: dict[Hashable, Any] = {}

    def keep(self, key: Hashable, make: Callable[[], T]) -> T:
        """The object kept under ``key``, made by ``make()`` the first time it is asked for.

        Kept for the worker's life: keys should name what the object is for (e.g.
        ``("redis", url, timeout)``), so a reload that changes nothing reuses it."""
        try:
            return self._kept[key]
        except KeyError:
            made = self._kept[key] = make()
            return made
