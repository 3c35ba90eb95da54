"""What a worker lends its interceptors: shared-memory tables and long-lived per-worker objects.

An interceptor is built from its config entry alone (``__init__``), in the master's checks
as in every worker, so building stays pure. What only a running worker has is handed over
afterwards, once per chain, by ``Interceptor.attach(resources, ident)``:

- ``buckets``: the token-bucket table in shared memory (``shm.buckets.BucketTable``), the
  same for every worker of the master, so a limit is exact across workers;
- ``keep(key, make)``: an object that outlives config versions, made once per worker on
  first use (a connection pool: a reload builds new chains but must not open new pools).

Outside a worker (``dakia-master check``, unit tests that build a chain without shared
memory) ``attach`` gets an empty ``Resources``: ``buckets`` is None.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Hashable, TypeVar

if TYPE_CHECKING:
    from ..shm.buckets import BucketTable

T = TypeVar("T")


class Resources:
    """The per-worker resources of interceptors; one instance for the worker's life."""

    def __init__(self, buckets: BucketTable | None = None) -> None:
        self.buckets = buckets
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
