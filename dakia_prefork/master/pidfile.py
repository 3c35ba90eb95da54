"""The pid file: how ``dakia-master stop|reload|status`` find the running master.

Written atomically (temp file + rename) so a reader never sees a half-written number. A pid
file that names a live process refuses a second start; one that names a dead process is
stale and is replaced.
"""
from __future__ import annotations

import os

from ..procs import alive


class PidFileError(Exception):
    pass


def read(path: str) -> int | None:
    """The pid in ``path`` if it names a live process, else None."""
    try:
        with open(path, encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    if pid <= 0 or not alive(pid):
        return None
    return pid


def write(path: str, pid: int) -> None:
    running = read(path)
    if running is not None and running != pid:
        raise PidFileError(f"{path}: another master is running (pid {running})")
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{pid}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{pid}\n")
        os.rename(tmp, path)
    except OSError as exc:
        raise PidFileError(f"{path}: cannot write pid file: {exc.strerror or exc}") from None


def remove(path: str, pid: int) -> None:
    """Remove ``path`` only if it still names ``pid`` (an upgrade may have moved it)."""
    try:
        with open(path, encoding="ascii") as f:
            if int(f.read().strip() or 0) != pid:
                return
        os.unlink(path)
    except (FileNotFoundError, ValueError):
        pass
