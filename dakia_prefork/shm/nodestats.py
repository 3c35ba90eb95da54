"""Per-node state shared by every worker: in-flight requests, latency, passive and active health.

Theory of operation
-------------------
The segment is a 64-byte header followed by ``capacity`` entries, one per upstream node,
found by key (``"<gateway>/<upstream>/<host:port>"``) with open addressing as in
``counters.py``: claiming an entry takes the table lock (range-lock offset 0), finding an
already claimed one takes no lock, because a key is written once and never removed.

Each entry has three parts, each with its own rule for writers, so that a worker SIGKILLed
at any instant leaves nothing that stalls or misleads the others for long:

- **In-flight counts**: one u32 per (node, worker record). Only the worker owning record
  ``r`` writes column ``r`` (``begin``/``end``), so there is no lock and no lost update. A
  reader sums the columns ``0 .. records_in_use - 1`` (the high-water mark of records ever
  handed out, kept in the header), which is a handful of values, not ``MAX_SLOTS``. A worker
  that dies mid-request leaves its column non-zero: the master calls ``clear_record`` when it
  reaps the worker, before it hands the record to a new one, and the dead count vanishes.
- **Latency and passive health** (EWMA, sample count, consecutive failures, ``ejected_until``)
  are read-modify-written by every worker, under the entry's range lock (offset
  ``1 + index``), which the kernel releases if its holder dies. The new values are stored
  with one ``pack_into`` after the lock is taken, so a holder killed inside the section
  leaves either the old or the new values.
- **Active health** (healthy / unhealthy / unknown, consecutive check successes and
  failures, time of the last check) is written by the one health-checker process only, in
  bytes no other writer touches, so it takes no lock.

Times are ``time.monotonic()`` values, passed in by the caller (tests use a fake clock).
CLOCK_MONOTONIC is one clock for the whole machine, so a time written by one process means
the same instant to every other.

Latency is an exponentially weighted moving average of the seconds the caller measured,
``ewma += EWMA_ALPHA * (sample - ewma)``: with alpha 0.3 the last five samples carry 83% of
the weight, so a node that slows down is noticed within a few requests. Between samples the
average decays towards zero with a half-life of ``EWMA_HALF_LIFE`` seconds: a node that lost
all its traffic because it was slow looks faster and faster until it gets a request again,
and its average is refreshed rather than frozen at its worst.

When the table is full, ``index_for`` returns None and the caller keeps that node's state in
its own process (the balancers do): selection still works, but that node's counts and health
are per worker instead of global. Entries are never reclaimed while the master runs (a
worker on an older config version may still be writing to one), so ``capacity`` must cover
every node named by the configs a master serves in its life; ``used()`` tells how close it is.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from .control import MAX_SLOTS
from .counters import key_of
from .lock import RangeLock
from .segment import Segment
from .spin import acquire, default_pause, lock_at, unlock_at

MAGIC = 0xDA1C0DE5
LAYOUT = 1

EWMA_ALPHA = 0.3
EWMA_HALF_LIFE = 10.0

HEALTH_UNKNOWN = 0
HEALTHY = 1
UNHEALTHY = 2
HEALTH_NAMES = {HEALTH_UNKNOWN: "unknown", HEALTHY: "healthy", UNHEALTHY: "unhealthy"}

_U32_MAX = 0xFFFFFFFF

_HEADER = struct.Struct("=IIIII")        # magic, layout, capacity, records, records in use
_HEADER_SIZE = 64
_OFF_IN_USE = 16
_U32 = struct.Struct("=I")

# Entry layout (offsets from the entry's start):
#   0  key u64
#   8  ewma f64, ewma_at f64, samples u32, failures u32, ejected_until f64   (node lock)
#  32  ejected_until f64, health u32                                          (read together)
#  40  health u32, health_ok u32, health_fail u32, pad u32, checked_at f64    (health checker)
#  64  in-flight u32 per worker record                                        (owner only)
_KEY = struct.Struct("=Q")
_PASSIVE = struct.Struct("=ddIId")
_OFF_PASSIVE = 8
_OFF_FAILURES = 28
_GATE = struct.Struct("=dI")
_OFF_GATE = 32
_HEALTH = struct.Struct("=IIIId")
_OFF_HEALTH = 40
_OFF_ACTIVE = 64


def entry_size(records: int) -> int:
    return _OFF_ACTIVE + (records * 4 + 7) // 8 * 8


def ewma_decayed(ewma: float, at: float, now: float) -> float:
    """The average as of ``now``: halved every ``EWMA_HALF_LIFE`` seconds without a sample."""
    if now <= at:
        return ewma
    return ewma * 0.5 ** ((now - at) / EWMA_HALF_LIFE)


def ewma_update(ewma: float, at: float, samples: int, seconds: float, now: float) -> float:
    """The average after one more sample; the first sample is taken as it is."""
    if samples == 0:
        return seconds
    base = ewma_decayed(ewma, at, now)
    return base + EWMA_ALPHA * (seconds - base)


def health_after_check(state: int, ok_run: int, fail_run: int, ok: bool,
                       healthy_threshold: int, unhealthy_threshold: int) -> tuple[int, int, int]:
    """(state, consecutive successes, consecutive failures) after one active check."""
    if ok:
        ok_run, fail_run = min(ok_run + 1, _U32_MAX), 0
        if state != HEALTHY and ok_run >= healthy_threshold:
            state = HEALTHY
    else:
        ok_run, fail_run = 0, min(fail_run + 1, _U32_MAX)
        if state != UNHEALTHY and fail_run >= unhealthy_threshold:
            state = UNHEALTHY
    return state, ok_run, fail_run


@dataclass(frozen=True)
class NodeSnapshot:
    """One node's shared state as seen at one moment (for status, metrics and tests)."""
    active: int
    latency: float | None
    samples: int
    failures: int
    ejected_until: float
    health: str
    health_ok: int
    health_fail: int
    checked_at: float


class NodeStats:
    """The node table in ``segment``, seen by the worker owning ``record`` (None: master,
    health checker, tools — they may read, claim, clear and check, not ``begin``/``end``)."""

    def __init__(self, segment: Segment, *, record: int | None = None,
                 pause: Callable[[], None] = default_pause) -> None:
        magic, layout, capacity, records, _ = _HEADER.unpack_from(segment.buf, 0)
        if magic != MAGIC or layout != LAYOUT:
            raise ValueError(f"{segment.name}: not a node-stats table (call NodeStats.format)")
        if record is not None and not 0 <= record < records:
            raise ValueError(f"record {record} outside 0..{records - 1}")
        self._seg = segment
        self._buf = segment.buf
        self.capacity = capacity
        self.records = records
        self.record = record
        self._entry = entry_size(records)
        self._table_lock = RangeLock(segment.fd, 0)
        self._pause = pause
        self._sums: dict[int, struct.Struct] = {}

    # -- layout (master) -----------------------------------------------------------------
    @staticmethod
    def size_for(capacity: int, records: int = MAX_SLOTS) -> int:
        return _HEADER_SIZE + capacity * entry_size(records)

    @staticmethod
    def format(segment: Segment, records: int = MAX_SLOTS) -> None:
        """Write the header of a new, zero-filled segment; once, before any worker forks."""
        capacity = (segment.size - _HEADER_SIZE) // entry_size(records)
        if capacity < 1:
            raise ValueError(f"{segment.name}: {segment.size} bytes hold no entry")
        _HEADER.pack_into(segment.buf, 0, MAGIC, LAYOUT, capacity, records, 0)

    def note_record(self, record: int) -> None:
        """Count ``record`` among the records in use; the master calls it before it forks
        the worker that will own ``record``."""
        if not 0 <= record < self.records:
            raise ValueError(f"record {record} outside 0..{self.records - 1}")
        acquire(self._table_lock, self._pause)
        try:
            if _U32.unpack_from(self._buf, _OFF_IN_USE)[0] <= record:
                _U32.pack_into(self._buf, _OFF_IN_USE, record + 1)
        finally:
            self._table_lock.release()

    @property
    def records_in_use(self) -> int:
        return _U32.unpack_from(self._buf, _OFF_IN_USE)[0]

    def clear_record(self, record: int) -> None:
        """Forget the in-flight counts of ``record``'s worker; the master calls it when it
        reaps that worker (nothing else writes that column any more)."""
        buf, size = self._buf, self._entry
        column = _OFF_ACTIVE + 4 * record
        for index in range(self.capacity):
            base = _HEADER_SIZE + index * size
            if _KEY.unpack_from(buf, base)[0]:
                _U32.pack_into(buf, base + column, 0)

    def used(self) -> int:
        """How many entries are claimed."""
        buf, size = self._buf, self._entry
        return sum(1 for index in range(self.capacity)
                   if _KEY.unpack_from(buf, _HEADER_SIZE + index * size)[0])

    # -- lookup ----------------------------------------------------------------------------
    def index_for(self, key: str) -> int | None:
        """The entry of the node named ``key``, claimed if new; None when the table is full."""
        digest = key_of(key)
        start = digest % self.capacity
        buf, size, capacity = self._buf, self._entry, self.capacity
        for probe in range(capacity):        # fast path: no lock, keys are written once
            index = (start + probe) % capacity
            found = _KEY.unpack_from(buf, _HEADER_SIZE + index * size)[0]
            if found == digest:
                return index
            if found == 0:
                break
        acquire(self._table_lock, self._pause)
        try:
            for probe in range(capacity):
                index = (start + probe) % capacity
                base = _HEADER_SIZE + index * size
                found = _KEY.unpack_from(buf, base)[0]
                if found == digest:
                    return index
                if found == 0:
                    _KEY.pack_into(buf, base, digest)
                    return index
            return None
        finally:
            self._table_lock.release()

    def find(self, key: str) -> int | None:
        """The entry of the node named ``key`` if one was claimed, else None; never claims
        (for readers, the metrics exposition and ``status``, which must not fill
        the table with nodes nobody uses)."""
        digest = key_of(key)
        start = digest % self.capacity
        buf, size, capacity = self._buf, self._entry, self.capacity
        for probe in range(capacity):
            index = (start + probe) % capacity
            found = _KEY.unpack_from(buf, _HEADER_SIZE + index * size)[0]
            if found == digest:
                return index
            if found == 0:
                return None
        return None

    # -- in-flight counts (owner of the record; no lock) ---------------------------------
    def begin(self, index: int) -> None:
        """One more request in flight to node ``index`` from this worker."""
        offset = _HEADER_SIZE + index * self._entry + _OFF_ACTIVE + 4 * self._own()
        _U32.pack_into(self._buf, offset,
                       (_U32.unpack_from(self._buf, offset)[0] + 1) & _U32_MAX)

    def end(self, index: int) -> None:
        """One request fewer in flight to node ``index`` from this worker."""
        offset = _HEADER_SIZE + index * self._entry + _OFF_ACTIVE + 4 * self._own()
        value = _U32.unpack_from(self._buf, offset)[0]
        if value:
            _U32.pack_into(self._buf, offset, value - 1)

    def active(self, index: int) -> int:
        """Requests in flight to node ``index`` from every worker."""
        in_use = _U32.unpack_from(self._buf, _OFF_IN_USE)[0]
        if in_use == 0:
            return 0
        summed = self._sums.get(in_use)
        if summed is None:
            summed = self._sums[in_use] = struct.Struct(f"={in_use}I")
        return sum(summed.unpack_from(self._buf, _HEADER_SIZE + index * self._entry
                                      + _OFF_ACTIVE))

    def _own(self) -> int:
        if self.record is None:
            raise RuntimeError("in-flight counts are written by a worker that owns a record")
        return self.record

    # -- latency and passive health (any worker; node lock) ------------------------------
    def observe(self, index: int, seconds: float, ok: bool, now: float,
                max_failures: int, eject_seconds: float) -> bool:
        """Record the outcome of one request to node ``index``.

        A success adds ``seconds`` to the latency average and resets the consecutive
        failures. A failure counts one more; the ``max_failures``-th in a row ejects the
        node until ``now + eject_seconds`` (``max_failures`` 0: never). The count is not
        reset by the ejection, so once the node is tried again a single failure ejects it
        anew, and only a success brings it fully back. Failures while ejected (requests
        that were already in flight) do not extend the ejection.
        Returns True when this call ejected the node (the caller logs it).
        """
        base = _HEADER_SIZE + index * self._entry
        fd = self._seg.fd
        lock_at(fd, 1 + index, self._pause)
        try:
            ewma, at, samples, failures, ejected_until = _PASSIVE.unpack_from(
                self._buf, base + _OFF_PASSIVE)
            ejected = False
            if ok:
                ewma = ewma_update(ewma, at, samples, seconds, now)
                at = now
                samples = min(samples + 1, _U32_MAX)
                failures = 0
            else:
                failures = min(failures + 1, _U32_MAX)
                if 0 < max_failures <= failures and ejected_until <= now:
                    ejected_until = now + eject_seconds
                    ejected = True
            _PASSIVE.pack_into(self._buf, base + _OFF_PASSIVE, ewma, at, samples, failures,
                               ejected_until)
        finally:
            unlock_at(fd, 1 + index)
        return ejected

    def latency(self, index: int, now: float) -> float | None:
        """The decayed latency average of node ``index``, None before its first sample."""
        ewma, at, samples, _, _ = _PASSIVE.unpack_from(
            self._buf, _HEADER_SIZE + index * self._entry + _OFF_PASSIVE)
        return ewma_decayed(ewma, at, now) if samples else None

    def failures(self, index: int) -> int:
        """Consecutive failures of node ``index`` (lock-free read: a success need not take
        the node lock to reset a count that is already 0)."""
        return _U32.unpack_from(self._buf, _HEADER_SIZE + index * self._entry + _OFF_FAILURES)[0]

    def gate(self, index: int) -> tuple[float, int]:
        """(ejected_until, health state) of node ``index``, read in one go."""
        return _GATE.unpack_from(self._buf, _HEADER_SIZE + index * self._entry + _OFF_GATE)

    # -- active health (the health checker only; no lock) --------------------------------
    def record_check(self, index: int, ok: bool, healthy_threshold: int,
                     unhealthy_threshold: int, now: float) -> int:
        """Apply one active check's result to node ``index``; returns the new health state.

        ``healthy_threshold`` successes in a row make the node healthy,
        ``unhealthy_threshold`` failures in a row unhealthy. A node never checked is
        ``HEALTH_UNKNOWN``, which the balancers treat as usable.
        """
        offset = _HEADER_SIZE + index * self._entry + _OFF_HEALTH
        state, ok_run, fail_run, _, _ = _HEALTH.unpack_from(self._buf, offset)
        state, ok_run, fail_run = health_after_check(state, ok_run, fail_run, ok,
                                                     healthy_threshold, unhealthy_threshold)
        _HEALTH.pack_into(self._buf, offset, state, ok_run, fail_run, 0, now)
        return state

    def reset_health(self, index: int) -> None:
        """Back to ``HEALTH_UNKNOWN`` (the node's health check was removed from the config)."""
        _HEALTH.pack_into(self._buf, _HEADER_SIZE + index * self._entry + _OFF_HEALTH,
                          HEALTH_UNKNOWN, 0, 0, 0, 0.0)

    # -- readers ---------------------------------------------------------------------------
    def snapshot(self, index: int, now: float) -> NodeSnapshot:
        base = _HEADER_SIZE + index * self._entry
        ewma, at, samples, failures, ejected_until = _PASSIVE.unpack_from(
            self._buf, base + _OFF_PASSIVE)
        state, ok_run, fail_run, _, checked_at = _HEALTH.unpack_from(self._buf,
                                                                     base + _OFF_HEALTH)
        return NodeSnapshot(self.active(index),
                            ewma_decayed(ewma, at, now) if samples else None, samples,
                            failures, ejected_until, HEALTH_NAMES.get(state, "?"), ok_run,
                            fail_run, checked_at)
