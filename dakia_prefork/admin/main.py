"""Admin-process entry point, called in the child right after the master forks it.

As a worker and the health checker: reset the master's signal handlers, ask to die with the
master, monkey-patch with gevent first thing, and only then import the code that serves.
SIGTERM and SIGQUIT stop it gracefully (no new connections; requests being answered are
finished, up to a few seconds).
"""
from __future__ import annotations

import os
import signal
import socket as _stdlib_socket
import sys
from typing import Any, NoReturn

_MASTER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT,
                   signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN,
                   signal.SIGTTOU, signal.SIGWINCH)


def run_admin(listener: _stdlib_socket.socket, channel: _stdlib_socket.socket,
              config: dict[str, Any], segments: Any) -> NoReturn:
    """Serve the admin API until told to stop, then ``os._exit``."""
    for sig in _MASTER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    # USR1 (reopen the logs) kills by default: ignored until the process's handler is in.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    from ..procs import die_with_parent, set_title
    from ..shm.control import ControlBlock
    set_title("admin")
    master = ControlBlock(segments.control).master_pid
    die_with_parent(signal.SIGTERM)
    from gevent import monkey
    monkey.patch_all()
    code = 1
    try:
        from .process import AdminProcess
        code = AdminProcess(listener, channel, config, segments, master).serve()
    except BaseException:  # noqa: BLE001 - never unwind into the master's loop
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
