"""Error-log setup shared by the master and (through fork) its workers.

``setup_logging`` runs at start and again on every reload, in the master and in each worker
(they inherit the master's handler at fork): a changed ``error_log`` or ``log_level`` is
applied, an unchanged one leaves the open file alone. The new file is opened before the old
handler is dropped, so a target that cannot be opened raises and changes nothing.
"""
from __future__ import annotations

import logging
import sys

from .config.model import Settings

_FORMAT = "%(asctime)s [%(levelname)s] %(process)d %(name)s: %(message)s"
_ROOT = "dakia"

_current: tuple[str, str] | None = None      # (error_log, log_level) set up last


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
