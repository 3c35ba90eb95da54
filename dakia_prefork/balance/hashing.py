"""Consistent hashing (ip_hash, url_hash): a key keeps its node while the node set changes.

Theory of operation
-------------------
Every node puts ``POINTS_PER_WEIGHT x weight`` points on a 64-bit ring, at the hashes of
``"<label>-0"``, ``"<label>-1"``, ... (the label is the node's address, so a node's points do
not depend on the other nodes, on its position in the list, or on the config version). A
key is hashed onto the ring and served by the owner of the first point at or after it.

Removing one of N equally weighted nodes takes away only that node's points: the keys it
owned move to the owners of the next points (spread over all the others), every other key
stays where it was. That is about 1/N of the keys, where ``hash % N`` would move almost all.
Adding a node takes about 1/(N+1) of the keys, all onto the new node.

Many points per node keep the shares even (the spread of a share shrinks as
1/sqrt(points)). When the total weight would put more than ``MAX_POINTS`` points on the ring,
each node gets a number of points in proportion to its weight that fits (at least 1); the
points of a node are a prefix of its sequence, so a change in counts moves few keys.

A key whose node is not usable goes to the next usable node along the ring, which is the
node it would move to if that node were removed: retries and ejections remap like removals.
A request without a key (no client address, say) is placed by weighted random choice.
"""
from __future__ import annotations

import bisect
import hashlib
from array import array
from typing import Iterator, Sequence

from .base import Balancer, Usable

POINTS_PER_WEIGHT = 160
MAX_POINTS = 40960


def ring_hash(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "big")


class HashRing:
    """The ring of node indices; ``walk`` gives the nodes in the order a key falls back on."""

    __slots__ = ("_hashes", "_owners", "_nodes")

    def __init__(self, labels: Sequence[str], weights: Sequence[int]) -> None:
        total = sum(weights)
        if total * POINTS_PER_WEIGHT <= MAX_POINTS:
            counts = [w * POINTS_PER_WEIGHT for w in weights]
        else:
            counts = [max(1, round(w * MAX_POINTS / total)) for w in weights]
        seen: dict[str, int] = {}
        points: list[tuple[int, int]] = []
        for index, (label, count) in enumerate(zip(labels, counts)):
            # The same address listed twice is two nodes: give the second its own points.
            repeat = seen.get(label, 0)
            seen[label] = repeat + 1
            name = label if repeat == 0 else f"{label}#{repeat}"
            points.extend((ring_hash(f"{name}-{i}"), index) for i in range(count))
        points.sort()
        self._hashes = array("Q", (h for h, _ in points))
        self._owners = array("I", (o for _, o in points))
        self._nodes = len(labels)

    def __len__(self) -> int:
        return len(self._hashes)

    def walk(self, key: str) -> Iterator[int]:
        """The distinct node indices met going clockwise from ``key``'s place on the ring."""
        hashes, owners = self._hashes, self._owners
        size = len(hashes)
        position = bisect.bisect_left(hashes, ring_hash(key))
        met: set[int] = set()
        for step in range(size):
            owner = owners[(position + step) % size]
            if owner not in met:
                yield owner
                met.add(owner)
                if len(met) == self._nodes:
                    return


class _ConsistentHash(Balancer):
    def _prepare(self) -> None:
        self.ring = HashRing([node.label for node in self.nodes], self.weights)

    def _select(self, key: str | None, usable: Usable, now: float) -> int | None:
        if key is None:
            candidates = [i for i in range(len(self.nodes)) if usable(i)]
            return self._weighted_choice(candidates) if candidates else None
        for index in self.ring.walk(key):
            if usable(index):
                return index
        return None


class IpHash(_ConsistentHash):
    """The client's address picks the node: a client sticks to one node."""

    algorithm = "ip_hash"
    key_kind = "ip"


class UrlHash(_ConsistentHash):
    """The request path picks the node: each node caches its own share of the URLs."""

    algorithm = "url_hash"
    key_kind = "url"
