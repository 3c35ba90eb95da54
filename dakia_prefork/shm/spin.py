"""Waiting for a range lock without ever blocking the process.

A critical section in shm/ is a few loads and stores with no I/O, so a lock is held for
microseconds: spinning on the non-blocking ``try_acquire`` finds it free almost at once.
After a burst of failed attempts the caller's ``pause`` runs (a worker passes
``gevent.sleep(0)`` to let its hub breathe; the master and tests pass ``time.sleep(0)``).
A holder that died released its locks with its last breath (``RangeLock``), so this loop
cannot wait on a dead process.
"""
from __future__ import annotations

import fcntl
import time
from typing import Callable

from .lock import RangeLock

SPIN = 64
_EXCLUSIVE_NOW = fcntl.LOCK_EX | fcntl.LOCK_NB


def default_pause() -> None:
    time.sleep(0)


def acquire(lock: RangeLock, pause: Callable[[], None]) -> None:
    """Take ``lock``, calling ``pause`` after every ``SPIN`` failed attempts."""
    spins = 0
    while not lock.try_acquire():
        spins += 1
        if spins >= SPIN:
            pause()
            spins = 0


def lock_at(fd: int, offset: int, pause: Callable[[], None]) -> None:
    """``acquire(RangeLock(fd, offset), pause)`` without building the object when the lock
    is free (the common case on the request path): the same ``lockf`` calls."""
    try:
        fcntl.lockf(fd, _EXCLUSIVE_NOW, 1, offset)
    except (BlockingIOError, PermissionError):
        acquire(RangeLock(fd, offset), pause)


def unlock_at(fd: int, offset: int) -> None:
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
