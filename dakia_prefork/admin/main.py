"""Admin-process entry point, called in the child right after the master forks it.

As a worker and the health checker: reset the master's signal handlers, ask to die with the
master, monkey-patch with gevent first thing, and only then import the code that serves.
SIGTERM and SIGQUIT stop it gracefully (no new connections; requests being answered are
finished, up to a few seconds).
"""
from __future__ import annotations

import signal
import socket as _stdlib_socket
from typing import Any, NoReturn

from ..procs import die_with_parent, exit_with, reset_master_signals, set_title


def run_admin(listener: _stdlib_socket.socket, channel: _stdlib_socket.socket,
              config: dict[str, Any], segments: Any) -> NoReturn:
    """Serve the admin API until told to stop, then ``os._exit``."""
    reset_master_signals(ignore_usr1=True)     # until the process's USR1 handler is in
    from ..shm.control import ControlBlock
    set_title("admin")
    master = ControlBlock(segments.control).master_pid
    die_with_parent(signal.SIGTERM)
    from gevent import monkey
    monkey.patch_all()

    def serve() -> int:
        from .process import AdminProcess
        return AdminProcess(listener, channel, config, segments, master).serve()
    exit_with(serve)
