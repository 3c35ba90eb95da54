"""A table of named 64-bit counters in shared memory, incremented atomically across workers.

Layout: ``capacity`` entries of 16 bytes, ``(key: u64, value: u64)``; key 0 marks a free entry.
A counter is found by open addressing from ``hash(key) % capacity``. Claiming a free entry
takes the table lock (range-lock offset 0); incrementing an entry takes that entry's lock
(offset ``1 + index``), so counters of different upstreams never contend.

Keys are 64-bit digests of a name (e.g. ``gateway/upstream``), so every worker and every
config version that names the same upstream shares one rotation. A full table makes
``slot_for`` return None and the caller falls back to a local counter: rotation stays correct
per worker, only the global ordering is lost.
"""
from __future__ import annotations

import hashlib
import struct
import time
from typing import Callable

from .lock import RangeLock
from .segment import Segment

_ENTRY = struct.Struct("=QQ")
_VALUE = struct.Struct("=Q")
_SPIN = 64


def key_of(name: str) -> int:
    """A non-zero 64-bit key for ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") or 1


class CounterTable:
    """Counters in ``segment``; ``pause`` is how a caller waits for a busy lock (never blocks)."""

    ENTRY_SIZE = _ENTRY.size

    def __init__(self, segment: Segment, pause: Callable[[], None] = lambda: time.sleep(0)) -> None:
        self._seg = segment
        self._buf = segment.buf
        self._capacity = segment.size // _ENTRY.size
        self._table_lock = RangeLock(segment.fd, 0)
        self._pause = pause

    @classmethod
    def size_for(cls, capacity: int) -> int:
        return capacity * _ENTRY.size

    def _locked(self, lock: RangeLock) -> None:
        spins = 0
        while not lock.try_acquire():
            spins += 1
            if spins >= _SPIN:
                self._pause()
                spins = 0

    def slot_for(self, name: str) -> int | None:
        """The index of the counter named ``name``, claimed if new; None if the table is full."""
        key = key_of(name)
        start = key % self._capacity
        buf = self._buf
        # Fast path: already claimed, found without the table lock (keys are written once).
        for probe in range(self._capacity):
            index = (start + probe) % self._capacity
            found = _ENTRY.unpack_from(buf, index * _ENTRY.size)[0]
            if found == key:
                return index
            if found == 0:
                break
        self._locked(self._table_lock)
        try:
            for probe in range(self._capacity):
                index = (start + probe) % self._capacity
                found = _ENTRY.unpack_from(buf, index * _ENTRY.size)[0]
                if found == key:
                    return index
                if found == 0:
                    _ENTRY.pack_into(buf, index * _ENTRY.size, key, 0)
                    return index
            return None
        finally:
            self._table_lock.release()

    def fetch_add(self, index: int, delta: int = 1) -> int:
        """Add ``delta`` to counter ``index`` and return its value before the addition."""
        lock = RangeLock(self._seg.fd, 1 + index)
        offset = index * _ENTRY.size + 8
        self._locked(lock)
        try:
            value = _VALUE.unpack_from(self._buf, offset)[0]
            _VALUE.pack_into(self._buf, offset, (value + delta) & 0xFFFFFFFFFFFFFFFF)
        finally:
            lock.release()
        return value

    def value(self, index: int) -> int:
        return _VALUE.unpack_from(self._buf, index * _ENTRY.size + 8)[0]
