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

import os
import signal
import socket as _stdlib_socket
import sys
from typing import Any, NoReturn

_MASTER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT,
                   signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN,
                   signal.SIGTTOU, signal.SIGWINCH)


def run_worker(slot: int, record: int, listeners: list[tuple[_stdlib_socket.socket, Any]],
               config: dict[str, Any], version: int, segments: Any,
               spare: list[tuple[int, _stdlib_socket.socket, Any]] | None = None) -> NoReturn:
    """Serve until told to stop, then ``os._exit``: never returns into the master's code.

    ``spare``: the other slots' sockets, served only while the master marks their slot
    vacant (worker/cover.py)."""
    for sig in _MASTER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    from ..procs import die_with_parent, set_title
    die_with_parent(signal.SIGQUIT)
    set_title(f"worker {slot}")
    from gevent import monkey
    monkey.patch_all()
    code = 1
    try:
        from .serve import Worker
        code = Worker(slot, record, listeners, config, version, segments, spare).serve()
    except BaseException:  # noqa: BLE001 - a worker must never unwind into the master's loop
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
