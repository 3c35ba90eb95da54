"""Per-worker metric counters in shared memory: one writer per region, no lock, summed by
readers.

Theory of operation
-------------------
The segment holds one region per worker record (the control block's record index), each
``capacity`` entries of 16 bytes, ``(key: u64, value: u64)``. Key 0 marks a free entry; a
key is the 64-bit digest of a metric's name and labels (:func:`metric_key`), found by open
addressing from ``key % capacity``.

Only the worker that owns a region writes to it, so nothing is locked, and a worker killed
at any instant cannot stall another. An aligned 8-byte store is a single store on the
platforms we run on, so a reader sees the value before or after an increment, never a
torn one. A new entry is claimed value first and key last, so a reader that sees the key
sees a value that belongs to it. A killed worker loses at most the increment it was
making.

A worker's replacement in the same record keeps counting from where its predecessor
stopped: the region is formatted once, by the master, at start. Counters therefore never
go down while the master lives, which is what Prometheus expects of a counter.

Values are integers: durations are counted in microseconds. A full region counts what it
cannot place in :data:`OVERFLOW_KEY`, which the exposition reports.

Readers that want everything (the exposition) call :meth:`MetricRegions.sums`: a region
whose writer was never made has no overflow entry (every writer claims it first), so it is
skipped unread, and a used one is copied in one slice and summed into a dict by key.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .segment import Segment

_ENTRY_WORDS = 2
ENTRY_SIZE = 8 * _ENTRY_WORDS
OVERFLOW_KEY = 1
"""The entry that counts increments a full region could not place."""


def metric_key(*parts: str) -> int:
    """The key of a metric's name and labels: a 64-bit digest above the reserved keys.
    Each part is length-prefixed, so no two ways of splitting a text share a key."""
    text = "".join(f"{len(part)}:{part}" for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 2


class MetricRegions:
    """The regions of ``records`` workers, ``capacity`` entries each, in ``segment``."""

    def __init__(self, segment: Segment, records: int, capacity: int) -> None:
        self._words = memoryview(segment.buf).cast("Q")
        self.records = records
        self.capacity = capacity

    @staticmethod
    def size_for(records: int, capacity: int) -> int:
        return records * capacity * ENTRY_SIZE

    def writer(self, record: int) -> "MetricWriter":
        return MetricWriter(self._words, record * self.capacity * _ENTRY_WORDS, self.capacity)

    def total(self, key: int) -> int:
        """The sum of ``key``'s value over every region."""
        return sum(self._find_value(record, key) for record in range(self.records))

    def used(self, record: int) -> bool:
        """Whether a writer was ever made for ``record``'s region (its overflow entry is
        the first one claimed)."""
        base = record * self.capacity * _ENTRY_WORDS
        index = OVERFLOW_KEY % self.capacity
        return bool(self._words[base + index * _ENTRY_WORDS] == OVERFLOW_KEY)

    def sums(self) -> dict[int, int]:
        """Every claimed key with its value summed over the regions in use."""
        summed: dict[int, int] = {}
        words = self._words
        span = self.capacity * _ENTRY_WORDS
        for record in range(self.records):
            if not self.used(record):
                continue
            region = words[record * span:(record + 1) * span].tolist()
            keys = region[0::2]
            values = region[1::2]
            for key, value in zip(keys, values):
                if key:
                    summed[key] = summed.get(key, 0) + value
        return summed

    def totals(self, keys: Iterable[int]) -> dict[int, int]:
        wanted = list(keys)
        return {key: self.total(key) for key in wanted}

    def _find_value(self, record: int, key: int) -> int:
        words = self._words
        base = record * self.capacity * _ENTRY_WORDS
        capacity = self.capacity
        index = key % capacity
        for _ in range(capacity):
            at = base + index * _ENTRY_WORDS
            found = words[at]
            if found == key:
                return int(words[at + 1])
            if found == 0:
                return 0
            index = (index + 1) % capacity
        return 0


class MetricWriter:
    """One worker's region: ``slot`` finds (or claims) an entry once, ``add`` counts in it.

    Callers resolve their slots when a config version is built and keep the offsets, so
    the request path pays one indexed add per counter.
    """

    __slots__ = ("_words", "_base", "_capacity", "_overflow")

    def __init__(self, words: memoryview, base: int, capacity: int) -> None:
        self._words = words
        self._base = base
        self._capacity = capacity
        self._overflow = self.slot(OVERFLOW_KEY, overflow=False)

    def slot(self, key: int, *, overflow: bool = True) -> int:
        """The word offset of ``key``'s value, claimed if new; the overflow entry's when
        the region is full."""
        words = self._words
        capacity = self._capacity
        index = key % capacity
        for _ in range(capacity):
            at = self._base + index * _ENTRY_WORDS
            found = words[at]
            if found == key:
                return at + 1
            if found == 0:
                words[at + 1] = 0
                words[at] = key
                return at + 1
            index = (index + 1) % capacity
        if not overflow:
            raise ValueError("a metrics region needs room for its overflow entry")
        return self._overflow

    @property
    def words(self) -> memoryview:
        """The segment as 64-bit words: ``words[slot] += n`` is ``add`` without the call
        (for the request path, metrics/recorder.py)."""
        return self._words

    def add(self, slot: int, amount: int = 1) -> None:
        words = self._words
        words[slot] = (words[slot] + amount) & 0xFFFFFFFFFFFFFFFF

    def value(self, slot: int) -> int:
        return int(self._words[slot])
