"""``make_balancer``: the balancer an upstream's ``node_selection_algorithm`` names."""
from __future__ import annotations

import random
import time
from typing import Callable, Sequence

from ..http.upstream import Node
from ..shm.counters import CounterTable
from ..shm.nodestats import NodeStats
from .base import Balancer
from .hashing import IpHash, UrlHash
from .least import LeastConnection, LeastResponseTime, PowerOfTwoChoices
from .round_robin import RoundRobin
from .state import PassiveHealth
from .weighted import Weighted
from .weighted_random import WeightedRandom

BALANCERS: dict[str, type[Balancer]] = {
    cls.algorithm: cls
    for cls in (RoundRobin, Weighted, LeastConnection, LeastResponseTime, IpHash, UrlHash,
                WeightedRandom, PowerOfTwoChoices)
}
ALGORITHMS = tuple(BALANCERS)


def make_balancer(algorithm: str, key_prefix: str, nodes: Sequence[Node],
                  counters: CounterTable | None = None, stats: NodeStats | None = None, *,
                  passive: PassiveHealth = PassiveHealth(), active_health: bool = False,
                  clock: Callable[[], float] = time.monotonic,
                  rng: random.Random | None = None) -> Balancer:
    """The balancer for one upstream of one config version.

    ``key_prefix`` is ``<gateway>/<upstream>``: it names the shared rotation counter and,
    with each node's label, the node's shared state. ``counters`` and ``stats`` are this
    worker's views of the shared tables (``stats`` built with the worker's record); without
    them the balancer keeps everything per process. ``active_health``: the upstream has a
    ``health_check``, so nodes the checker found unhealthy are skipped.
    """
    try:
        cls = BALANCERS[algorithm]
    except KeyError:
        raise ValueError(f"unknown node_selection_algorithm {algorithm!r} "
                         f"(one of {', '.join(ALGORITHMS)})") from None
    return cls(key_prefix, nodes, counters, stats, passive=passive,
               active_health=active_health, clock=clock, rng=rng)
