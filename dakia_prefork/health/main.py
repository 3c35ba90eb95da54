"""Health-checker entry point, called in the child right after the master forks it.

Like a worker (``worker/main.py``): reset the master's signal handlers, monkey-patch with
gevent first thing, and only then import the code that uses sockets.

It never outlives the master: SIGTERM when the master dies (``PR_SET_PDEATHSIG``), and a
greenlet that checks once a second that its parent is still the master, for when that
signal was missed.
"""
from __future__ import annotations

import os
import signal
from typing import Any, NoReturn

from ..procs import die_with_parent, exit_with, orphaned, reset_master_signals, set_title


def run_health_checker(config: dict[str, Any], version: int, segments: Any) -> NoReturn:
    """Check until told to stop, then ``os._exit``: never returns into the master's code."""
    reset_master_signals(ignore_usr1=True)     # until the checker's USR1 handler is in
    set_title("health")
    from ..shm.control import ControlBlock
    master = ControlBlock(segments.control).master_pid     # not getppid(): it may be 1 now
    die_with_parent(signal.SIGTERM)
    from gevent import monkey
    monkey.patch_all()

    def check() -> int:
        import gevent

        def watch_master() -> None:
            while not orphaned(master):
                gevent.sleep(1.0)
            os._exit(0)         # nothing to drain: checks are only reads
        gevent.spawn(watch_master)
        from .checker import HealthChecker
        return HealthChecker(config, version, segments).serve()
    exit_with(check)
