"""Round robin whose rotation is global across workers.

The rotation counter of an upstream lives in the shared ``CounterTable`` under the key
``<gateway>/<upstream>``, so two workers taking turns still walk the nodes in one sequence:
100 requests over 2 nodes land 50 and 50 whichever workers serve them. If the table is full
the balancer keeps a local counter (correct per worker, not globally interleaved).
"""
from __future__ import annotations

from typing import Sequence

from ..http.upstream import Node
from ..shm.counters import CounterTable


class RoundRobin:
    __slots__ = ("nodes", "_count", "_counters", "_slot", "_local")

    def __init__(self, key: str, nodes: Sequence[Node], counters: CounterTable | None) -> None:
        self.nodes = list(nodes)
        self._count = len(self.nodes)
        self._counters = counters
        self._slot = counters.slot_for(key) if counters is not None else None
        self._local = 0

    def pick(self) -> Node:
        if self._count == 1:
            return self.nodes[0]
        if self._slot is not None:
            turn = self._counters.fetch_add(self._slot)  # type: ignore[union-attr]
        else:
            turn = self._local
            self._local += 1
        return self.nodes[turn % self._count]
