"""Cross-worker state in POSIX shared memory: segments, crash-safe locks, counters, the control block.

shm/ knows bytes and numbers, not requests. Nothing here imports gevent: callers that must
not block (workers) use the non-blocking ``try_acquire`` and decide themselves how to wait.
"""
from .segment import Segment, segment_name, sweep_stale
from .lock import RangeLock
from .counters import CounterTable
from .control import ControlBlock, WorkerRecord

__all__ = ["Segment", "segment_name", "sweep_stale", "RangeLock", "CounterTable",
           "ControlBlock", "WorkerRecord"]
