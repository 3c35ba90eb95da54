"""The interface every balancer has, and what they share: availability, stats hooks, rotation.

Per request the caller does::

    node = balancer.pick(key, exclude=tried)     # None: no usable node -> 503
    balancer.begin(node)
    try: ... send, read the response head ...
    finally: balancer.end(node, seconds, ok)     # ok None: the outcome says nothing of the node

``key`` is what ``balancer.key_kind`` asks for ("ip": the client address, "url": the
request path) and is ignored by the others. A node is usable unless it is in ``exclude``
(already tried by this request), ejected by passive health, or unhealthy by active checks
(only when the upstream has ``active_health``). Passive ejection is ignored for an upstream
of one node, as nginx does: refusing its only node answers 503 where trying it might work.

What ``begin``/``end`` record is what selection reads: in-flight counts for
least_connection, least_response_time and p2c (``counts_in_flight``), latency for
least_response_time (``uses_latency``), failures for passive health. The other balancers
keep no counts, so for them a successful exchange costs two calls that return at once.
"""
from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Collection, Sequence

from ..http.upstream import Node
from ..shm.counters import CounterTable
from ..shm.nodestats import UNHEALTHY, NodeStats
from .state import PASSIVE_OFF, NodeState, PassiveHealth, node_key, state_for

Usable = Callable[[int], bool]


class Rotation:
    """A turn number per pick, global across workers when the shared counter is there.

    The counter is ``CounterTable``'s entry named by the upstream (``<gateway>/<upstream>``);
    without a table, or with a full one, the rotation is per worker (each worker's sequence
    stays right, only the interleaving between workers is lost).
    """

    __slots__ = ("_counters", "_slot", "_local")

    def __init__(self, key: str, counters: CounterTable | None, start: int = 0) -> None:
        self._counters = counters
        self._slot = counters.slot_for(key) if counters is not None else None
        self._local = start

    def next(self) -> int:
        if self._slot is not None:
            return self._counters.fetch_add(self._slot)  # type: ignore[union-attr]
        turn = self._local
        self._local += 1
        return turn


class Balancer(ABC):
    """Base class: subclasses implement ``_select``."""

    algorithm: ClassVar[str] = ""
    key_kind: ClassVar[str | None] = None      # "ip", "url" or None: what ``pick`` needs
    # Whether the rotation must be global (round robin, weighted). Others use it only to
    # break ties, for which a per-worker turn is as good and costs no lock.
    shared_rotation: ClassVar[bool] = False
    # Whether selection reads the latency average. Those that do not skip recording it on
    # a success (a locked update), unless the node has failures in a row to reset.
    uses_latency: ClassVar[bool] = False
    # Whether selection reads the in-flight counts (least_*, p2c). The others do not keep
    # them: begin/end then cost nothing on success, which is most of the request path's
    # share of balancing (measured: ~8% of a one-worker gateway's throughput).
    counts_in_flight: ClassVar[bool] = False

    def __init__(self, key_prefix: str, nodes: Sequence[Node],
                 counters: CounterTable | None = None, stats: NodeStats | None = None, *,
                 passive: PassiveHealth = PassiveHealth(), active_health: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if not nodes:
            raise ValueError(f"{key_prefix}: an upstream needs at least one node")
        self.key_prefix = key_prefix
        self.nodes = list(nodes)
        self.weights = [max(1, int(node.weight)) for node in self.nodes]
        self.states: list[NodeState] = [state_for(stats, node_key(key_prefix, node))
                                        for node in self.nodes]
        self._position = {id(node): i for i, node in enumerate(self.nodes)}
        self._passive = passive if len(self.nodes) > 1 else PASSIVE_OFF
        # A success matters to the node's state only for these.
        self._watch_success = self.uses_latency or bool(self._passive.max_failures)
        self._active_health = active_health
        self._clock = clock
        # The module's generator is reseeded in every forked child; a private one is not.
        self._random: Callable[[], float] = rng.random if rng is not None else random.random
        if self.shared_rotation:
            self._rotation = Rotation(key_prefix, counters)
        else:
            # Tie-breaks only: each worker starts somewhere else, so that idle workers do
            # not all send their first request to the first node.
            self._rotation = Rotation(key_prefix, None, int(self._random() * len(self.nodes)))
        self._prepare()

    # -- the interface -------------------------------------------------------------------
    def pick(self, key: str | None = None, exclude: Collection[Node] = ()) -> Node | None:
        """The node for the next request, or None when no node is usable."""
        now = self._clock()
        available = self._available
        if exclude:
            skip = {self._position.get(id(node), -1) for node in exclude}

            def usable(i: int) -> bool:
                return i not in skip and available(i, now)
        else:
            def usable(i: int) -> bool:
                return available(i, now)
        index = self._select(key, usable, now)
        return None if index is None else self.nodes[index]

    def begin(self, node: Node) -> None:
        """A request to ``node`` starts (counted by least_connection, p2c, least_response_time)."""
        if self.counts_in_flight:
            self.states[self._position[id(node)]].begin()

    def end(self, node: Node, seconds: float, ok: bool | None) -> bool:
        """The request to ``node`` that ``begin`` counted is over.

        ``seconds``: from sending the request to the response head (the latency sample;
        kept only by balancers that use it, ``uses_latency``).
        ``ok``: True (an answer), False (refused, reset, timed out: a passive-health failure)
        or None (nothing learnt about the node, e.g. the client went away).
        Returns True when this failure ejected the node (worth a log line).
        """
        counted = self.counts_in_flight
        if not counted and (ok is None or (ok and not self._watch_success)):
            return False
        state = self.states[self._position[id(node)]]
        if counted:
            state.end()
        if ok is None or (ok and not self.uses_latency and not state.failing()):
            return False
        return state.observe(seconds, ok, self._clock(), self._passive)

    def usable(self, node: Node) -> bool:
        """Whether ``pick`` may choose ``node`` now (for status pages and tests)."""
        return self._available(self._position[id(node)], self._clock())

    # -- for subclasses ------------------------------------------------------------------
    def _prepare(self) -> None:
        """Precompute what ``_select`` needs from ``nodes`` and ``weights`` (once per version)."""

    @abstractmethod
    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        """The index of the node to use among those ``usable`` says yes to, or None."""

    def _available(self, index: int, now: float) -> bool:
        """Not ejected (when passive health applies), not unhealthy (when checks run)."""
        if not (self._passive.max_failures or self._active_health):
            return True
        ejected_until, state = self.states[index].gate()
        if self._passive.max_failures and ejected_until > now:
            return False
        return not (self._active_health and state == UNHEALTHY)

    def _weighted_choice(self, candidates: Sequence[int], skip: int = -1) -> int:
        """A candidate drawn with probability proportional to its weight (``skip`` left out)."""
        weights = self.weights
        total = sum(weights[i] for i in candidates if i != skip)
        point = self._random() * total
        chosen = -1
        for i in candidates:
            if i == skip:
                continue
            chosen = i
            point -= weights[i]
            if point < 0:
                break
        return chosen
