"""Load-aware selection: least connections, least response time, power of two choices.

All three read the in-flight counts that every worker publishes for every node
(``NodeStats``), so "least loaded" means across the whole gateway, not within one worker.
Two workers picking at the same instant may both choose the same idle node; p2c exists to
make such herding unlikely, the others accept it as nginx does.

Ties are broken by a rotating start (per worker): equally loaded nodes take turns.
"""
from __future__ import annotations

from .base import Balancer, Usable


class LeastConnection(Balancer):
    """The usable node with the fewest requests in flight per unit of weight."""

    algorithm = "least_connection"
    counts_in_flight = True

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        count = len(self.nodes)
        start = self._rotation.next()
        best, best_load = None, 0.0
        for step in range(count):
            index = (start + step) % count
            if not usable(index):
                continue
            load = self.states[index].active() / self.weights[index]
            if best is None or load < best_load:
                best, best_load = index, load
        return best


class LeastResponseTime(Balancer):
    """The usable node with the lowest expected wait: latency EWMA x (in flight + 1) / weight.

    Nodes without a latency sample come first (ordered by in-flight load), so a new node is
    measured at once. A node's average decays while it gets no traffic
    (``nodestats.EWMA_HALF_LIFE``), so a node shunned for being slow is tried again and its
    average refreshed, instead of being frozen at its worst.
    """

    algorithm = "least_response_time"
    uses_latency = True
    counts_in_flight = True

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        count = len(self.nodes)
        start = self._rotation.next()
        best, best_score = None, (0, 0.0)
        for step in range(count):
            index = (start + step) % count
            if not usable(index):
                continue
            state = self.states[index]
            load = (state.active() + 1) / self.weights[index]
            latency = state.latency(now)
            score = (0, load) if latency is None else (1, latency * load)
            if best is None or score < best_score:
                best, best_score = index, score
        return best


class PowerOfTwoChoices(Balancer):
    """Two usable nodes drawn at random (by weight), the less loaded of the two wins.

    Nearly as good as least connections at spreading load, and two workers deciding at the
    same instant rarely pile onto the same node, because each looks at a random pair.
    """

    algorithm = "p2c"
    counts_in_flight = True

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        candidates = [i for i in range(len(self.nodes)) if usable(i)]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        first = self._weighted_choice(candidates)
        second = self._weighted_choice(candidates, skip=first)
        states, weights = self.states, self.weights
        if states[second].active() * weights[first] < states[first].active() * weights[second]:
            return second
        return first
