"""Token buckets in shared memory, exact across workers, in a bounded table.

Theory of operation
-------------------
A bucket is identified by ``(limiter, key)`` (e.g. ``("root/3", "203.0.113.9")``), hashed to a
non-zero 64-bit digest. The segment is a 64-byte header and ``capacity`` entries of 32 bytes,
``(digest u64, tokens i64, updated f64, full_at f64)``.

Where a bucket lives. A digest may only sit in the ``window`` (16) entries starting at
``digest % capacity``. Entries are replaced, never emptied, and a new bucket takes the first
entry of its window that is empty or evictable, so every entry before a bucket in its window
is occupied: a lookup scans the window without a lock and stops at the first empty entry.

Locks. ``take`` on an existing bucket takes only that entry's range lock (offset
``1 + index``), so buckets of different keys never contend, and re-checks the digest under
the lock (the entry may have been given to another key between the scan and the lock).
Creating a bucket takes the table lock (offset 0), then the chosen entry's lock, writes the
state and the digest last. Never both in the other order, so there is no deadlock. Waiting
never blocks the process: ``try_acquire`` and the caller's ``pause`` (``spin.py``). The
kernel drops the locks of a process that dies, so a worker SIGKILLed inside ``take``
delays nobody; the state is stored with one ``pack_into``, so it is the old or the new.

Semantics (Dakia's). ``refill_rate`` tokens are added every ``refill_interval`` ms, in whole
steps, up to ``capacity``; a bucket starts full; a request takes one token or is refused.
The refill steps count from the moment the bucket was last full, so a full bucket and no
bucket at all behave the same: that is what makes eviction of full buckets invisible.

Eviction. Each entry records ``full_at``, when it will be full again. An entry whose
``full_at`` has passed is idle: evicting it changes no answer, and a new bucket takes the
first idle or empty entry of its window. When all 16 entries of the window hold buckets
that are still refilling, the one that will be full soonest is evicted: its key starts
again from a full bucket, so it may be admitted up to the tokens it had not yet regained.
That only happens when the table is too small for the keys in play; every such eviction
is counted (``busy_evictions``) so that metrics can say so. Entries whose lock is held at
that moment are in use and are never chosen.

All times are ``time.monotonic()`` (one clock for every process of the machine).
"""
from __future__ import annotations

import hashlib
import struct
import time
from typing import Callable, NamedTuple

from .lock import RangeLock
from .segment import Segment
from .spin import acquire, default_pause, lock_at, unlock_at

MAGIC = 0xDA1CB0C7
LAYOUT = 1
WINDOW = 16
DIGEST_CACHE_ENTRIES = 4096
DIGEST_CACHE_KEY_CHARS = 64

_HEADER = struct.Struct("=IIIIQQ")   # magic, layout, capacity, window, idle/busy evictions
_HEADER_SIZE = 64
_EVICTIONS = struct.Struct("=QQ")
_OFF_EVICTIONS = 16
_KEY = struct.Struct("=Q")
_STATE = struct.Struct("=qdd")       # tokens, updated, full_at: right after the digest
_ENTRY = struct.Struct("=Qqdd")
_ENTRY_SIZE = 32


class BucketLimit:
    """One limiter's settings, prepared once per config version (not per request)."""

    __slots__ = ("limiter", "capacity", "refill_rate", "refill_interval_ms", "interval",
                 "_hasher", "_digests")

    def __init__(self, limiter: str, capacity: int, refill_rate: int,
                 refill_interval_ms: int) -> None:
        if capacity < 1 or refill_rate < 1 or refill_interval_ms < 1:
            raise ValueError("capacity, refill_rate and refill_interval must be at least 1")
        self.limiter = limiter
        self.capacity = capacity
        self.refill_rate = refill_rate
        self.refill_interval_ms = refill_interval_ms
        self.interval = refill_interval_ms / 1000.0
        self._hasher = hashlib.blake2b(limiter.encode() + b"\0", digest_size=8)
        # Recent keys' digests: a client address is hashed once, not on every request.
        # Bounded in entries and in key length (a header value may be long), and emptied
        # whole when full, which costs one re-hash per key.
        self._digests: dict[str, int] = {}

    def digest(self, key: str) -> int:
        """The non-zero 64-bit digest of this limiter's bucket for ``key``."""
        known = self._digests.get(key)
        if known is not None:
            return known
        hasher = self._hasher.copy()
        hasher.update(key.encode("utf-8", "surrogateescape"))
        digest = int.from_bytes(hasher.digest(), "little") or 1
        if len(key) <= DIGEST_CACHE_KEY_CHARS:
            digests = self._digests
            if len(digests) >= DIGEST_CACHE_ENTRIES:
                digests.clear()
            digests[key] = digest
        return digest


class TakeResult(NamedTuple):
    allowed: bool
    remaining: int                # tokens left after this request
    reset_seconds: float          # until the bucket is full again
    retry_after_seconds: float    # 0 when allowed; else until the next token


def refill(tokens: int, updated: float, now: float, limit: BucketLimit) -> tuple[int, float]:
    """Add the whole refill steps elapsed since ``updated``; a full bucket restarts the count."""
    if tokens >= limit.capacity:
        return limit.capacity, now
    elapsed = now - updated
    if elapsed >= limit.interval:
        steps = int(elapsed // limit.interval)
        tokens += steps * limit.refill_rate
        if tokens >= limit.capacity:
            return limit.capacity, now
        updated += steps * limit.interval
    return tokens, updated


def take_token(tokens: int, updated: float, now: float,
               limit: BucketLimit) -> tuple[int, float, float, TakeResult]:
    """The pure step: (tokens, updated, full_at) after one request, and the answer."""
    tokens, updated = refill(tokens, updated, now, limit)
    allowed = tokens >= 1
    if allowed:
        tokens -= 1
    steps_to_full = -(-(limit.capacity - tokens) // limit.refill_rate)
    full_at = updated + steps_to_full * limit.interval
    retry_after = 0.0 if allowed else max(0.0, updated + limit.interval - now)
    return tokens, updated, full_at, TakeResult(allowed, tokens, max(0.0, full_at - now),
                                                retry_after)


class BucketTable:
    """The bucket table in ``segment``; ``pause`` is how a caller waits for a busy lock."""

    def __init__(self, segment: Segment, pause: Callable[[], None] = default_pause,
                 clock: Callable[[], float] = time.monotonic) -> None:
        magic, layout, capacity, window, _, _ = _HEADER.unpack_from(segment.buf, 0)
        if magic != MAGIC or layout != LAYOUT:
            raise ValueError(f"{segment.name}: not a bucket table (call BucketTable.format)")
        self._seg = segment
        self._buf = segment.buf
        self.capacity = capacity
        self.window = window
        self._table_lock = RangeLock(segment.fd, 0)
        self._pause = pause
        self._clock = clock

    @staticmethod
    def size_for(capacity: int) -> int:
        return _HEADER_SIZE + capacity * _ENTRY_SIZE

    @staticmethod
    def format(segment: Segment, window: int = WINDOW) -> None:
        """Write the header of a new, zero-filled segment; once, before any worker forks."""
        capacity = (segment.size - _HEADER_SIZE) // _ENTRY_SIZE
        if capacity < 1:
            raise ValueError(f"{segment.name}: {segment.size} bytes hold no bucket")
        _HEADER.pack_into(segment.buf, 0, MAGIC, LAYOUT, capacity, min(window, capacity), 0, 0)

    def take(self, limit: BucketLimit, key: str, now: float | None = None) -> TakeResult:
        """Take one token from ``limit``'s bucket for ``key`` (created full if absent)."""
        if now is None:
            now = self._clock()
        digest = limit.digest(key)
        while True:
            index = self._find(digest)
            if index is not None:
                result = self._take_at(index, digest, limit, now)
                if result is not None:
                    return result
                continue                     # evicted between the scan and the lock
            result = self._create(digest, limit, now)
            if result is not None:
                return result
            # Created by another process meanwhile, or every candidate entry was in use at
            # that instant: wait a little (with no lock held) and look again.
            self._pause()

    def _take_at(self, index: int, digest: int, limit: BucketLimit,
                 now: float) -> TakeResult | None:
        """Take from the bucket at ``index`` under its entry lock; None if the entry was
        given to another key between the lock-free scan and the lock."""
        buf, fd = self._buf, self._seg.fd
        lock_at(fd, 1 + index, self._pause)
        try:
            base = _HEADER_SIZE + index * _ENTRY_SIZE
            if _KEY.unpack_from(buf, base)[0] != digest:
                return None
            tokens, updated, _ = _STATE.unpack_from(buf, base + 8)
            tokens, updated, full_at, result = take_token(tokens, updated, now, limit)
            _STATE.pack_into(buf, base + 8, tokens, updated, full_at)
            return result
        finally:
            unlock_at(fd, 1 + index)

    def _find(self, digest: int) -> int | None:
        buf, capacity = self._buf, self.capacity
        start = digest % capacity
        for probe in range(self.window):
            index = (start + probe) % capacity
            found = _KEY.unpack_from(buf, _HEADER_SIZE + index * _ENTRY_SIZE)[0]
            if found == digest:
                return index
            if found == 0:
                return None
        return None

    def _create(self, digest: int, limit: BucketLimit, now: float) -> TakeResult | None:
        """Claim an entry for a new bucket and take its first token; None: look again
        (another process created it meanwhile, or every candidate was locked).

        Never pauses while it holds the table lock: range locks belong to the process, so a
        greenlet that ran during the pause would get the same lock and enter alongside."""
        buf, capacity = self._buf, self.capacity
        start = digest % capacity
        acquire(self._table_lock, self._pause)
        try:
            candidates: list[tuple[float, int]] = []
            chosen: int | None = None
            busy = False
            for probe in range(self.window):
                index = (start + probe) % capacity
                found, _, _, full_at = _ENTRY.unpack_from(buf, _HEADER_SIZE + index * _ENTRY_SIZE)
                if found == digest:
                    return None
                if found == 0 or full_at <= now:
                    # Empty, or idle (full again: the same as no bucket). The lock fails only
                    # if a take is inside this entry right now; then it is not idle after all.
                    if self._try_lock(index):
                        chosen = index
                        break
                    if found == 0:
                        break        # nothing of this window may be placed past an empty entry
                    continue
                candidates.append((full_at, index))
            else:
                # Every entry of the window holds a refilling bucket: evict the one that will
                # be full soonest (it loses the least), skipping any in use at this instant.
                for _, index in sorted(candidates):
                    if self._try_lock(index):
                        chosen, busy = index, True
                        break
            if chosen is None:
                return None
            try:
                base = _HEADER_SIZE + chosen * _ENTRY_SIZE
                previous = _KEY.unpack_from(buf, base)[0]
                tokens, updated, full_at, result = take_token(limit.capacity, now, now, limit)
                _STATE.pack_into(buf, base + 8, tokens, updated, full_at)
                _KEY.pack_into(buf, base, digest)
                if previous:
                    idle, busy_count = _EVICTIONS.unpack_from(buf, _OFF_EVICTIONS)
                    _EVICTIONS.pack_into(buf, _OFF_EVICTIONS, idle + (not busy),
                                         busy_count + busy)
            finally:
                RangeLock(self._seg.fd, 1 + chosen).release()
            return result
        finally:
            self._table_lock.release()

    def _try_lock(self, index: int) -> bool:
        return RangeLock(self._seg.fd, 1 + index).try_acquire()

    # -- readers ---------------------------------------------------------------------------
    def evictions(self) -> tuple[int, int]:
        """(idle buckets replaced, still-refilling buckets replaced) since the table began."""
        return _EVICTIONS.unpack_from(self._buf, _OFF_EVICTIONS)

    def used(self) -> int:
        return sum(1 for index in range(self.capacity)
                   if _KEY.unpack_from(self._buf, _HEADER_SIZE + index * _ENTRY_SIZE)[0])
