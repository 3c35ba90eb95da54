"""The control block: the published config version and one record per worker process.

Every field has exactly one writer, so nothing here takes a lock:

- the header (config version, master pid, readiness, and the master's counters: reloads
  that succeeded and failed, workers that died unasked) is written by the master only;
- record ``i`` is written by the worker the master gave record ``i`` (boot, heartbeat,
  requests served, open client connections and WebSocket tunnels, config version it
  serves) and cleared by
  the master when it reaps that
  worker. Records are not slots: during a rolling restart two workers serve one slot, each
  with its own record; the record carries the slot it serves.

After the records, two master-written areas:

- the *vacant slots*: one bit per slot that has had no ready worker for a while (boot
  back-off after crashes). Every ready worker also accepts on a vacant slot's sockets
  until its bit clears, so the connections queued there are served (worker/cover.py);
- the *last reload result*, a JSON document (ok, version, errors...) under a sequence
  number, odd while it is being written (a seqlock): ``dakia-master reload`` reads it
  here even when state_dir cannot take a file (disk full, read-only, permission denied),
  and so can the admin API;
- the *helper processes* (health checker, ACME process, config follower, admin API): one
  entry per role with its pid (0: not running) and start time, so that ``status`` and
  the dashboard show them beside the workers.

Fields are 8-byte aligned, and an aligned 8-byte store is atomic on the platforms we run on,
so a reader sees each field either old or new. A reader may see a record whose fields come
from two different moments; ``status`` tolerates that, nothing else reads across records.
"""
from __future__ import annotations

import json
import struct
import time
from typing import Any
from dataclasses import dataclass

from .segment import Segment

MAGIC = 0xDA1C1A01
MAX_SLOTS = 256

_HEADER = struct.Struct("=IIQQdI")         # magic, layout, master pid, config version, started,
_HEADER_SIZE = 64                          # ready
_RECORD = struct.Struct("=IIQddQIIQQ")     # pid, state, config version, started, heartbeat,
                                           # requests, slot, generation, connections,
                                           # websockets
_RECORD_SIZE = 64

STATE_FREE = 0
STATE_BOOTING = 1
STATE_READY = 2
STATE_DRAINING = 3
STATE_NAMES = {STATE_FREE: "free", STATE_BOOTING: "booting", STATE_READY: "ready",
               STATE_DRAINING: "draining"}

_OFF_VERSION = 16
_OFF_READY = 32
_OFF_RELOADS_OK = 40
_OFF_RELOADS_FAILED = 48
_OFF_WORKER_RESTARTS = 56
_REC_OFF_VERSION = 8
_REC_OFF_HEARTBEAT = 24
_REC_OFF_REQUESTS = 32
_REC_OFF_CONNECTIONS = 48
_REC_OFF_WEBSOCKETS = 56
_VACANT_OFF = _HEADER_SIZE + MAX_SLOTS * _RECORD_SIZE
_VACANT_WORDS = MAX_SLOTS // 64
_RELOAD_OFF = _VACANT_OFF + 64
_RELOAD_HEAD = struct.Struct("=QI")          # sequence, length of the JSON that follows
_RELOAD_SIZE = 8192
_RELOAD_MAX_JSON = _RELOAD_SIZE - 16
_HELPERS_OFF = _RELOAD_OFF + _RELOAD_SIZE
_HELPER = struct.Struct("=Qd")               # pid, started (time.time())
HELPER_ROLES: tuple[str, ...] = ("health_checker", "acme", "config_follower", "admin")
"""The helper processes' roles, in the order of their entries."""
_HELPERS_SIZE = _HELPER.size * 8             # room for four more roles
_Q = struct.Struct("=Q")
_D = struct.Struct("=d")
_I = struct.Struct("=I")


@dataclass(frozen=True)
class WorkerRecord:
    record: int
    slot: int
    generation: int
    pid: int
    state: str
    config_version: int
    started: float
    heartbeat: float
    requests: int
    connections: int = 0
    websockets: int = 0


@dataclass(frozen=True)
class HelperRecord:
    role: str
    pid: int
    started: float


class ControlBlock:
    SIZE = _HELPERS_OFF + _HELPERS_SIZE

    def __init__(self, segment: Segment) -> None:
        self._buf = segment.buf

    # -- master side ---------------------------------------------------------------------
    def initialise(self, master_pid: int) -> None:
        _HEADER.pack_into(self._buf, 0, MAGIC, 5, master_pid, 0, time.time(), 0)
        for offset in (_OFF_RELOADS_OK, _OFF_RELOADS_FAILED, _OFF_WORKER_RESTARTS):
            _Q.pack_into(self._buf, offset, 0)

    def count_reload(self, ok: bool) -> None:
        offset = _OFF_RELOADS_OK if ok else _OFF_RELOADS_FAILED
        _Q.pack_into(self._buf, offset, _Q.unpack_from(self._buf, offset)[0] + 1)

    def count_worker_restart(self) -> None:
        """A worker died without being asked to (crash, kill, missed heartbeats)."""
        value = _Q.unpack_from(self._buf, _OFF_WORKER_RESTARTS)[0]
        _Q.pack_into(self._buf, _OFF_WORKER_RESTARTS, value + 1)

    def set_ready(self, ready: bool) -> None:
        """Every slot has a ready worker of the current generation (``upgrade`` waits on it)."""
        _I.pack_into(self._buf, _OFF_READY, 1 if ready else 0)

    def publish_version(self, version: int) -> None:
        _Q.pack_into(self._buf, _OFF_VERSION, version)

    def clear(self, record: int) -> None:
        self._buf[_HEADER_SIZE + record * _RECORD_SIZE:
                  _HEADER_SIZE + (record + 1) * _RECORD_SIZE] = bytes(_RECORD_SIZE)

    def boot(self, record: int, pid: int, slot: int, generation: int,
             config_version: int) -> None:
        """Written by the master just before it forks the worker (``pid`` 0 then), so that
        the worker's own later writes (state, heartbeat) can never be overwritten."""
        now = time.time()
        _RECORD.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE, pid, STATE_BOOTING,
                          config_version, now, now, 0, slot, generation, 0, 0)

    def set_pid(self, record: int, pid: int) -> None:
        _I.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE, pid)

    def set_vacant(self, slots: frozenset[int]) -> None:
        """The slots the ready workers should cover (each word written whole)."""
        for word in range(_VACANT_WORDS):
            bits = 0
            for slot in slots:
                if slot // 64 == word:
                    bits |= 1 << (slot % 64)
            _Q.pack_into(self._buf, _VACANT_OFF + 8 * word, bits)

    def publish_reload(self, result: dict[str, Any]) -> None:
        """Record the last reload's result; errors are dropped from the end to fit."""
        errors = [str(e)[:1000] for e in result.get("errors", [])]
        kept = len(errors)
        while True:
            shown = errors[:kept]
            if kept < len(errors):
                shown.append(f"... and {len(errors) - kept} more")
            data = json.dumps({**result, "errors": shown}).encode()
            if len(data) <= _RELOAD_MAX_JSON or kept == 0:
                break
            kept //= 2
        data = data[:_RELOAD_MAX_JSON]
        seq = _Q.unpack_from(self._buf, _RELOAD_OFF)[0] & ~1
        _Q.pack_into(self._buf, _RELOAD_OFF, seq + 1)          # odd: being written
        self._buf[_RELOAD_OFF + 16:_RELOAD_OFF + 16 + len(data)] = data
        _I.pack_into(self._buf, _RELOAD_OFF + 8, len(data))
        _Q.pack_into(self._buf, _RELOAD_OFF, seq + 2)

    def set_helper(self, role: str, pid: int | None, started: float) -> None:
        """The helper process of ``role`` is ``pid`` since ``started`` (None: none runs)."""
        _HELPER.pack_into(self._buf, _HELPERS_OFF + _HELPER.size * HELPER_ROLES.index(role),
                          pid or 0, started if pid else 0.0)

    # -- worker side ---------------------------------------------------------------------

    def set_state(self, record: int, state: int) -> None:
        _I.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE + 4, state)

    def set_config_version(self, record: int, version: int) -> None:
        _Q.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE + _REC_OFF_VERSION,
                     version)

    def beat(self, record: int, requests: int) -> None:
        base = _HEADER_SIZE + record * _RECORD_SIZE
        _D.pack_into(self._buf, base + _REC_OFF_HEARTBEAT, time.time())
        _Q.pack_into(self._buf, base + _REC_OFF_REQUESTS, requests)

    def set_connections(self, record: int, connections: int) -> None:
        """The client connections this worker holds open now (a gauge; the master's reap
        clears it with the record)."""
        _Q.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE + _REC_OFF_CONNECTIONS,
                     connections)

    def set_websockets(self, record: int, websockets: int) -> None:
        """The WebSocket tunnels this worker relays now (a gauge, as ``set_connections``)."""
        _Q.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE + _REC_OFF_WEBSOCKETS,
                     websockets)

    # -- readers -------------------------------------------------------------------------
    @property
    def reloads(self) -> tuple[int, int]:
        """(succeeded, failed) reloads since the master started."""
        return (_Q.unpack_from(self._buf, _OFF_RELOADS_OK)[0],
                _Q.unpack_from(self._buf, _OFF_RELOADS_FAILED)[0])

    @property
    def worker_restarts(self) -> int:
        return _Q.unpack_from(self._buf, _OFF_WORKER_RESTARTS)[0]

    @property
    def valid(self) -> bool:
        return _HEADER.unpack_from(self._buf, 0)[0] == MAGIC

    @property
    def config_version(self) -> int:
        return _Q.unpack_from(self._buf, _OFF_VERSION)[0]

    @property
    def master_started(self) -> float:
        return _HEADER.unpack_from(self._buf, 0)[4]

    @property
    def master_pid(self) -> int:
        return _HEADER.unpack_from(self._buf, 0)[2]

    @property
    def ready(self) -> bool:
        return _I.unpack_from(self._buf, _OFF_READY)[0] == 1

    @property
    def vacant(self) -> frozenset[int]:
        slots = set()
        for word in range(_VACANT_WORDS):
            bits = _Q.unpack_from(self._buf, _VACANT_OFF + 8 * word)[0]
            while bits:
                low = bits & -bits
                slots.add(word * 64 + low.bit_length() - 1)
                bits ^= low
        return frozenset(slots)

    def vacant_word(self, slot: int) -> int:
        """The word holding ``slot``'s bit: one read for a worker's cheap check."""
        return _Q.unpack_from(self._buf, _VACANT_OFF + 8 * (slot // 64))[0]

    @property
    def reload_sequence(self) -> int:
        """Grows by two with every reload result (0: none yet)."""
        return _Q.unpack_from(self._buf, _RELOAD_OFF)[0]

    def last_reload(self) -> dict[str, Any] | None:
        """The last reload result, or None when there is none (or it is being written)."""
        for _attempt in range(100):
            seq, length = _RELOAD_HEAD.unpack_from(self._buf, _RELOAD_OFF)
            if seq == 0:
                return None
            if seq % 2:
                time.sleep(0.001)
                continue
            data = bytes(self._buf[_RELOAD_OFF + 16:_RELOAD_OFF + 16 + min(length,
                                                                        _RELOAD_MAX_JSON)])
            if _Q.unpack_from(self._buf, _RELOAD_OFF)[0] != seq:
                continue
            try:
                value = json.loads(data)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
        return None

    def helpers(self) -> list[HelperRecord]:
        """The helper processes running now, in role order."""
        out = []
        for index, role in enumerate(HELPER_ROLES):
            pid, started = _HELPER.unpack_from(self._buf, _HELPERS_OFF + _HELPER.size * index)
            if pid:
                out.append(HelperRecord(role, pid, started))
        return out

    def record(self, record: int) -> WorkerRecord:
        (pid, state, version, started, heartbeat, requests, slot, generation, connections,
         websockets) = _RECORD.unpack_from(self._buf, _HEADER_SIZE + record * _RECORD_SIZE)
        return WorkerRecord(record, slot, generation, pid, STATE_NAMES.get(state, "?"), version,
                            started, heartbeat, requests, connections, websockets)

    def records(self) -> list[WorkerRecord]:
        return [r for r in (self.record(i) for i in range(MAX_SLOTS)) if r.pid]
