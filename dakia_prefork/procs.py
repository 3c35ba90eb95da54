"""Processes: whether one is alive (shared by the pid file: is a master running?, and the
shared-memory sweep: did the master that made this segment die?), how a child learns
that its parent died (workers, the health checker and the config loader must not outlive
their master), the title each shows in ps and top, and how a child of the master starts
(the master's signal handlers undone) and ends (``os._exit``, never back into the
master's code)."""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, NoReturn

MASTER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT,
                  signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN,
                  signal.SIGTTOU, signal.SIGWINCH)
"""The signals the master handles; a child it forks starts with their default actions."""


def reset_master_signals(*, ignore_usr1: bool = False) -> None:
    """In a child right after fork: the master's handlers and wakeup fd undone. With
    ``ignore_usr1``, USR1 (reopen the logs, which kills by default) is ignored until the
    child installs its own handler."""
    for sig in MASTER_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if ignore_usr1:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)


def exit_with(body: Callable[[], int]) -> NoReturn:
    """Run a child's ``body`` and ``os._exit`` with its code (1 if it raised, after
    printing the traceback): a child of the master never unwinds into the master's loop."""
    code = 1
    try:
        code = body()
    except BaseException:  # noqa: BLE001 - whatever happened, the child ends here
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def alive(pid: int) -> bool:
    """True if ``pid`` runs. An exited process its parent has not reaped yet (a zombie)
    counts as gone; one we may not signal (another user's) counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, IndexError):
        return True


# -- parent death (Linux prctl) -----------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies
    (``PR_SET_PDEATHSIG``). False where that is not available (not Linux, no libc).

    The request is lost if the parent died before it was made, so a child calls this first
    and then compares ``os.getppid()`` with the parent it expects (see
    :func:`orphaned`); it survives exec but not fork, so every child asks for itself."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def orphaned(parent: int) -> bool:
    """True once ``parent`` is no longer our parent: it died and we were re-parented (to
    pid 1 or a subreaper). The fallback where the death signal did not arrive."""
    return os.getppid() != parent


# -- process titles -----------------------------------------------------------------------
TITLE_PREFIX = "dakia"


def set_title(role: str) -> None:
    """Show this process as ``dakia <role>`` in ps, top and /proc/<pid>/cmdline (as nginx's
    "nginx: worker process" and gunicorn's "gunicorn: worker"), so an operator tells the
    master, the workers and the helpers apart without reading pids from ``status``.

    Roles in use: ``master -c <config>``, ``worker <slot>``, ``health``, ``config loader``
    ``admin`` and ``acme``. Each process calls it for itself, right after
    fork: the title lives in the process's own argv memory, which a fork copies.
    """
    import setproctitle
    setproctitle.setproctitle(f"{TITLE_PREFIX} {role}")
