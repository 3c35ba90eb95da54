"""Error-log setup shared by the master and (through fork) its workers.

``setup_logging`` runs at start and again on every reload, in the master and in each worker
(they inherit the master's handler at fork): a changed ``error_log`` or ``log_level`` is
applied, an unchanged one leaves the open file alone. The new file is opened before the old
handler is dropped, so a target that cannot be opened raises and changes nothing.

A master started with ``--daemon`` has no terminal: its stdout and stderr are /dev/null.
``stdout`` and ``stderr`` as log targets are refused there (at start, on reload, and in a
new master exec'd by a binary upgrade, which inherits the mark in its environment) rather
than lost in silence; and fd 2 is pointed at the error log file, as nginx does, so what is
written to stderr rather than logged (a worker's crash traceback, a refusal printed by a
new master during an upgrade) lands in the error log.
"""
from __future__ import annotations

import logging
import os
import sys

from .config.model import Settings

_FORMAT = "%(asctime)s [%(levelname)s] %(process)d %(name)s: %(message)s"
_ROOT = "dakia"

_current: tuple[str, str] | None = None      # (error_log, log_level) set up last

# Set in the environment of a master that detached (start --daemon), so that its children
# and a new master exec'd by a binary upgrade know it too.
DETACHED_ENV = "DAKIA_DETACHED"
_EXAMPLE_PATHS = {"error_log": "/var/log/dakia/error.log",
                  "access_log": "/var/log/dakia/access.log"}


def setup_logging(settings: Settings) -> bool:
    """Log the "dakia" loggers to ``settings.error_log`` at ``settings.log_level``.

    Returns whether anything changed. Raises OSError (nothing changed) when the file
    cannot be opened.
    """
    global _current
    wanted = (settings.error_log, settings.log_level)
    if wanted == _current:
        return False
    root = logging.getLogger(_ROOT)
    if _current is None or _current[0] != settings.error_log:
        handler = _open_handler(settings.error_log)
        handler.setFormatter(logging.Formatter(_FORMAT))
        old = root.handlers[:]
        root.handlers[:] = [handler]
        for previous in old:
            previous.close()           # a FileHandler closes its file; stderr stays open
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    _current = wanted
    if detached():
        _stderr_to_error_log()
    return True


def _open_handler(target: str) -> logging.Handler:
    if target == "stderr":
        return logging.StreamHandler(sys.stderr)
    return logging.FileHandler(target, encoding="utf-8")


def reopen_logs() -> None:
    """Reopen the error log file (USR1, after logrotate moved it away)."""
    for handler in logging.getLogger(_ROOT).handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream:
                    handler.stream.close()
                handler.stream = handler._open()
            finally:
                handler.release()
    if detached():
        _stderr_to_error_log()


# -- a master without a terminal (start --daemon) --------------------------------------------
def detached() -> bool:
    """Whether this process belongs to a master started with ``--daemon``."""
    return os.environ.get(DETACHED_ENV) == "1"


def detach_stdio() -> None:
    """In the daemon, once it has left the terminal: stdin and stdout on /dev/null, stderr
    on the error log file (set up before), and the mark in the environment."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.environ[DETACHED_ENV] = "1"
    _stderr_to_error_log()


def detached_target_problem(key: str, target: str, is_detached: bool) -> str | None:
    """Why ``key: target`` cannot serve a detached master (its lines would go to
    /dev/null), with what to set instead; None when it can."""
    if not is_detached or target not in ("stdout", "stderr"):
        return None
    instead = "a file" + (" or off" if key == "access_log" else "")
    return (f"{key}: {target} is /dev/null for a master started with --daemon, so its "
            f"lines would be lost; set {key} to {instead} (e.g. {_EXAMPLE_PATHS[key]}), "
            f"or start in the foreground (systemd, a container or a supervisor keeps "
            f"{target})")


def _stderr_to_error_log() -> None:
    """Point fd 2 at the error log file (nginx's redirect of stderr): what is written to
    stderr instead of logged reaches the error log, and follows it on reopen and reload."""
    for handler in logging.getLogger(_ROOT).handlers:
        if isinstance(handler, logging.FileHandler) and handler.stream:
            sys.stderr.flush()
            os.dup2(handler.stream.fileno(), 2)
            return
