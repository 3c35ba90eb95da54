"""What a balancer knows about one node: in-flight requests, latency, passive and active health.

Two implementations behind one interface: ``SharedNodeState`` is an entry of the shared
``NodeStats`` table (global across workers); ``LocalNodeState`` keeps the same numbers in
this process, for a balancer built without a shared table (tests, tools) or for a node the
full table could not hold (its counts and passive health are then per worker, and it is
never seen as unhealthy by active checks, which publish only to the shared table).
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

from ..http.upstream import Node
from ..shm.nodestats import HEALTH_UNKNOWN, NodeStats, ewma_decayed, ewma_update


class PassiveHealth(NamedTuple):
    """Passive health of an upstream: ``max_failures`` consecutive failures eject a node for
    ``eject_seconds``; ``max_failures`` 0 turns ejection off."""
    max_failures: int = 3
    eject_seconds: float = 10.0


PASSIVE_OFF = PassiveHealth(0, 0.0)


def node_key(key_prefix: str, node: Node) -> str:
    """The name of a node's shared state: ``<gateway>/<upstream>/<host:port>`` (the health
    checker names nodes the same way to publish their health)."""
    return f"{key_prefix}/{node.label}"


class NodeState(Protocol):
    def gate(self) -> tuple[float, int]:
        """(ejected_until, active health state)."""

    def active(self) -> int:
        """Requests in flight to the node, from every worker that shares this state."""

    def latency(self, now: float) -> float | None:
        """Decayed EWMA of the node's latency in seconds; None before the first sample."""

    def begin(self) -> None: ...

    def end(self) -> None: ...

    def failing(self) -> bool:
        """Whether the node has failures in a row that a success would reset."""

    def observe(self, seconds: float, ok: bool, now: float, passive: PassiveHealth) -> bool:
        """Record one outcome; True when it ejected the node."""


class SharedNodeState:
    __slots__ = ("_stats", "_index")

    def __init__(self, stats: NodeStats, index: int) -> None:
        self._stats = stats
        self._index = index

    def gate(self) -> tuple[float, int]:
        return self._stats.gate(self._index)

    def active(self) -> int:
        return self._stats.active(self._index)

    def latency(self, now: float) -> float | None:
        return self._stats.latency(self._index, now)

    def begin(self) -> None:
        self._stats.begin(self._index)

    def end(self) -> None:
        self._stats.end(self._index)

    def failing(self) -> bool:
        return self._stats.failures(self._index) != 0

    def observe(self, seconds: float, ok: bool, now: float, passive: PassiveHealth) -> bool:
        return self._stats.observe(self._index, seconds, ok, now, passive.max_failures,
                                   passive.eject_seconds)


class LocalNodeState:
    """The same rules as ``NodeStats`` (same EWMA, same ejection), in this process only."""

    __slots__ = ("_active", "_ewma", "_at", "_samples", "_failures", "_ejected_until")

    def __init__(self) -> None:
        self._active = 0
        self._ewma = 0.0
        self._at = 0.0
        self._samples = 0
        self._failures = 0
        self._ejected_until = 0.0

    def gate(self) -> tuple[float, int]:
        return self._ejected_until, HEALTH_UNKNOWN

    def active(self) -> int:
        return self._active

    def latency(self, now: float) -> float | None:
        return ewma_decayed(self._ewma, self._at, now) if self._samples else None

    def begin(self) -> None:
        self._active += 1

    def end(self) -> None:
        if self._active:
            self._active -= 1

    def failing(self) -> bool:
        return self._failures != 0

    def observe(self, seconds: float, ok: bool, now: float, passive: PassiveHealth) -> bool:
        if ok:
            self._ewma = ewma_update(self._ewma, self._at, self._samples, seconds, now)
            self._at = now
            self._samples += 1
            self._failures = 0
            return False
        self._failures += 1
        if 0 < passive.max_failures <= self._failures and self._ejected_until <= now:
            self._ejected_until = now + passive.eject_seconds
            return True
        return False


def state_for(stats: NodeStats | None, key: str) -> NodeState:
    """The shared state named ``key`` when the table has (or can claim) it, else a local one."""
    if stats is not None:
        index = stats.index_for(key)
        if index is not None:
            return SharedNodeState(stats, index)
    return LocalNodeState()
