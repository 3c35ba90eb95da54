"""The master's hands on processes: fork, signal, reap. One seam, so the reconcile loop's
decisions (spawn, back off, retire, cover) are unit-tested with a fake (tests/unit/
test_reconcile.py) in milliseconds, and the real thing is three system calls."""
from __future__ import annotations

import errno
import os
from typing import Callable, NoReturn, Protocol


class Spawner(Protocol):
    def fork(self, child: Callable[[], NoReturn]) -> int:
        """Start a process running ``child``; its pid."""

    def kill(self, pid: int, sig: int) -> None:
        """Signal ``pid``; a process already gone is not an error."""

    def reap(self) -> tuple[int, int] | None:
        """One exited child as (pid, wait status), or None when none has exited."""


class OsSpawner:
    def fork(self, child: Callable[[], NoReturn]) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(1)     # child() never returns; if it raises, never unwind here
        return pid

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def reap(self) -> tuple[int, int] | None:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        return None if pid == 0 else (pid, status)
