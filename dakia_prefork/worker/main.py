"""Worker entry point, called in the child right after fork.

Theory of operation
-------------------
The master is a plain synchronous process; it forks, and the child calls ``run_worker``,
whose first act is to reset the master's signal handlers and monkey-patch with gevent. Only
then are gevent and the HTTP code imported: the master never loads them.

The child inherits the master's listening sockets as plain (blocking) socket objects. It
keeps only those of its slot and turns each into a gevent socket on the same descriptor.
The master keeps its own copies open, so when this worker exits, the connections queued on
its sockets wait for the replacement in the same slot instead of being reset.

A worker never outlives its master: it asks the kernel for SIGQUIT when the master dies
(``PR_SET_PDEATHSIG``), so it drains and exits (bounded by ``graceful_timeout``), and its
heartbeat checks that its parent is still the master, for when that signal was missed (the
master died before the request was made).

Signals, as in nginx: QUIT drains (stop accepting, finish requests in flight, close idle
keep-alive connections, exit when done or at ``graceful_timeout``); TERM and INT exit at
once; HUP makes the worker look for a newly published config version now rather than at
its next heartbeat.
"""
from __future__ import annotations

import signal
import socket as _stdlib_socket
from typing import Any, NoReturn

from ..procs import die_with_parent, exit_with, reset_master_signals, set_title


def run_worker(slot: int, record: int, listeners: list[tuple[_stdlib_socket.socket, Any]],
               config: dict[str, Any], version: int, segments: Any,
               spare: list[tuple[int, _stdlib_socket.socket, Any]] | None = None) -> NoReturn:
    """Serve until told to stop, then ``os._exit``: never returns into the master's code.

    ``spare``: the other slots' sockets, served only while the master marks their slot
    vacant (worker/cover.py)."""
    # USR1 (reopen the logs) kills by default: ignored until serve() installs its handler,
    # so a logrotate during a worker's boot does not cost the worker.
    reset_master_signals(ignore_usr1=True)
    die_with_parent(signal.SIGQUIT)
    set_title(f"worker {slot}")
    from gevent import monkey
    monkey.patch_all()

    def serve() -> int:
        from .serve import Worker
        return Worker(slot, record, listeners, config, version, segments, spare).serve()
    exit_with(serve)
