"""Smooth weighted round robin (nginx's), globally ordered across workers.

nginx interleaves nodes by weight with a running "current weight" per node: each turn every
node gains its weight, the largest is chosen and loses the total. For weights 5, 1, 1 that
gives a a b a c a a, then again: the heavy node never gets a long burst. That state is a
function of the turn number alone (it repeats every ``sum(weights)`` turns), so it is
precomputed here as a cycle and indexed by the shared rotation counter: every worker walks
the same sequence with the one atomic increment round robin already does, and no other lock.

Weights are divided by their greatest common divisor first. A cycle longer than
``CYCLE_LIMIT`` turns is built from weights scaled down to fit (each at least 1), which keeps
the proportions to within about one part in ``CYCLE_LIMIT / len(nodes)``.

When the node of this turn is not usable, another is drawn among the usable ones in
proportion to weight, so the traffic of a missing node is spread by weight instead of all
falling on its successor in the cycle.
"""
from __future__ import annotations

import math
from typing import Sequence

from .base import Balancer, Usable

CYCLE_LIMIT = 4096


def swrr_cycle(weights: Sequence[int], limit: int = CYCLE_LIMIT) -> list[int]:
    """One period of nginx's smooth weighted round robin, as node indices."""
    divisor = math.gcd(*weights)
    reduced = [w // divisor for w in weights]
    total = sum(reduced)
    if total > limit:
        reduced = [max(1, round(w * limit / total)) for w in reduced]
        total = sum(reduced)
    current = [0] * len(reduced)
    cycle: list[int] = []
    for _ in range(total):
        best = 0
        for i, weight in enumerate(reduced):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= total
        cycle.append(best)
    return cycle


class Weighted(Balancer):
    algorithm = "weighted"
    shared_rotation = True

    def _prepare(self) -> None:
        self.cycle = swrr_cycle(self.weights)

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        if len(self.nodes) == 1:
            return 0 if usable(0) else None
        index = self.cycle[self._rotation.next() % len(self.cycle)]
        if usable(index):
            return index
        candidates = [i for i in range(len(self.nodes)) if usable(i)]
        return self._weighted_choice(candidates) if candidates else None
