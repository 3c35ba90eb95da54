"""The control block: the published config version and one record per worker process.

Every field has exactly one writer, so nothing here takes a lock:

- the header (config version, master pid, readiness) is written by the master only;
- record ``i`` is written by the worker the master gave record ``i`` (boot, heartbeat,
  requests served, config version it serves) and cleared by the master when it reaps that
  worker. Records are not slots: during a rolling restart two workers serve one slot, each
  with its own record; the record carries the slot it serves.

Fields are 8-byte aligned, and an aligned 8-byte store is atomic on the platforms we run on,
so a reader sees each field either old or new. A reader may see a record whose fields come
from two different moments; ``status`` tolerates that, nothing else reads across records.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from .segment import Segment

MAGIC = 0xDA1C1A01
MAX_SLOTS = 256

_HEADER = struct.Struct("=IIQQdI")         # magic, layout, master pid, config version, started,
_HEADER_SIZE = 64                          # ready
_RECORD = struct.Struct("=IIQddQII")       # pid, state, config version, started, heartbeat,
                                           # requests, slot, generation
_RECORD_SIZE = 64

STATE_FREE = 0
STATE_BOOTING = 1
STATE_READY = 2
STATE_DRAINING = 3
STATE_NAMES = {STATE_FREE: "free", STATE_BOOTING: "booting", STATE_READY: "ready",
               STATE_DRAINING: "draining"}

_OFF_VERSION = 16
_OFF_READY = 32
_REC_OFF_VERSION = 8
_REC_OFF_HEARTBEAT = 24
_REC_OFF_REQUESTS = 32
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


class ControlBlock:
    SIZE = _HEADER_SIZE + MAX_SLOTS * _RECORD_SIZE

    def __init__(self, segment: Segment) -> None:
        self._buf = segment.buf

    # -- master side ---------------------------------------------------------------------
    def initialise(self, master_pid: int) -> None:
        _HEADER.pack_into(self._buf, 0, MAGIC, 2, master_pid, 0, time.time(), 0)

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
                          config_version, now, now, 0, slot, generation)

    def set_pid(self, record: int, pid: int) -> None:
        _I.pack_into(self._buf, _HEADER_SIZE + record * _RECORD_SIZE, pid)

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

    # -- readers -------------------------------------------------------------------------
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

    def record(self, record: int) -> WorkerRecord:
        pid, state, version, started, heartbeat, requests, slot, generation = \
            _RECORD.unpack_from(self._buf, _HEADER_SIZE + record * _RECORD_SIZE)
        return WorkerRecord(record, slot, generation, pid, STATE_NAMES.get(state, "?"), version,
                            started, heartbeat, requests)

    def records(self) -> list[WorkerRecord]:
        return [r for r in (self.record(i) for i in range(MAX_SLOTS)) if r.pid]
