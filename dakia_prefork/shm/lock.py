"""Locks in shared memory that a dead holder cannot keep.

POSIX named semaphores stay taken when their holder is SIGKILLed. We use ``fcntl`` byte-range
locks on the segment's descriptor instead: the kernel drops every lock of a process the
moment it dies, whatever killed it, so a worker killed at any instant never stalls the others
and the master has nothing to recover. Each lock is one byte at its own offset, so a segment
carries as many independent locks as it needs (offsets past the end of the file are fine).

Record locks belong to the process, not to a thread or greenlet: two greenlets of one worker
would both "get" the lock. That is harmless because a critical section here never yields to
the hub (no I/O inside), so greenlets cannot interleave within it.

``try_acquire`` never blocks; the caller decides how to wait (a worker yields to its hub).
"""
from __future__ import annotations

import fcntl


class RangeLock:
    __slots__ = ("_fd", "_offset")

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def try_acquire(self) -> bool:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def acquire_blocking(self) -> None:
        """For the master and tools only: blocks the whole process until the lock is free."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, self._offset)

    def release(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset)
