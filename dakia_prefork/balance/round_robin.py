"""Round robin whose rotation is global across workers.

The rotation counter of an upstream lives in the shared ``CounterTable`` under the key
``<gateway>/<upstream>``, so two workers taking turns still walk the nodes in one sequence:
100 requests over 2 nodes land 50 and 50 whichever workers serve them. If the table is full
the balancer keeps a local counter (correct per worker, not globally interleaved).

When the node of this turn is not usable (ejected, unhealthy, already tried), the turn
goes to the usable nodes in rotation (``turn % len(usable)``) rather than to the next node
in the list, which would double the load of the missing node's successor.
"""
from __future__ import annotations

from .base import Balancer, Usable


class RoundRobin(Balancer):
    algorithm = "round_robin"
    shared_rotation = True

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        count = len(self.nodes)
        if count == 1:
            return 0 if usable(0) else None
        turn = self._rotation.next()
        index = turn % count
        if usable(index):
            return index
        candidates = [i for i in range(count) if usable(i)]
        return candidates[turn % len(candidates)] if candidates else None
