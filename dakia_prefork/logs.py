"""Error-log setup shared by the master and (through fork) its workers."""
from __future__ import annotations

import logging
import sys
from typing import Any

_FORMAT = "%(asctime)s [%(levelname)s] %(process)d %(name)s: %(message)s"


def setup_logging(config: dict[str, Any]) -> None:
    target = config.get("error_log", "stderr")
    if target == "stderr":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger("dakia")
    root.handlers[:] = [handler]
    root.setLevel(config.get("log_level", "info").upper())
    root.propagate = False


def reopen_logs() -> None:
    """Reopen the error log file (USR1, after logrotate moved it away)."""
    for handler in logging.getLogger("dakia").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream:
                    handler.stream.close()
                handler.stream = handler._open()
            finally:
                handler.release()
