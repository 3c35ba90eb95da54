"""Child processes for shared-memory tests: fork a body, reap it, kill it; none survives.

Used by the tests that need several real processes on one segment (locks, counters,
buckets, node state); tests/unit/conftest.py kills whatever a failing test left behind.
"""
from __future__ import annotations

import os
import signal
import traceback
from typing import Callable

SPAWNED: list[int] = []


def fork(body: Callable[[], None]) -> int:
    """Run ``body`` in a child; it exits 0, or 1 with the traceback printed."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    SPAWNED.append(pid)
    return pid


def reap(pid: int) -> int:
    """Wait for child ``pid``; returns its exit code."""
    _, status = os.waitpid(pid, 0)
    SPAWNED.remove(pid)
    return os.waitstatus_to_exitcode(status)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    reap(pid)


def wait_ok(pid: int) -> None:
    assert reap(pid) == 0
