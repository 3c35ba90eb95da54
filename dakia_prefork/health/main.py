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
import sys
from typing import Any, NoReturn

_MASTER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT,
                   signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN,
                   signal.SIGTTOU, signal.SIGWINCH)


def run_health_checker(config: dict[str, Any], version: int, segments: Any) -> NoReturn:
    """Check until told to stop, then ``os._exit``: never returns into the master's code."""
    for sig in _MASTER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    # USR1 (reopen the logs) kills by default: ignored until the checker's handler is in.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    from ..procs import die_with_parent, orphaned, set_title
    set_title("health")
    from ..shm.control import ControlBlock
    master = ControlBlock(segments.control).master_pid     # not getppid(): it may be 1 now
    die_with_parent(signal.SIGTERM)
    from gevent import monkey
    monkey.patch_all()
    code = 1
    try:
        import gevent

        def watch_master() -> None:
            while not orphaned(master):
                gevent.sleep(1.0)
            os._exit(0)         # nothing to drain: checks are only reads
        gevent.spawn(watch_master)
        from .checker import HealthChecker
        code = HealthChecker(config, version, segments).serve()
    except BaseException:  # noqa: BLE001 - never unwind into the master's loop
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
