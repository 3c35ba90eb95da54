"""Random selection in proportion to node weight (among the usable nodes)."""
from __future__ import annotations

from .base import Balancer, Usable


class WeightedRandom(Balancer):
    algorithm = "random"

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        candidates = [i for i in range(len(self.nodes)) if usable(i)]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return self._weighted_choice(candidates)
