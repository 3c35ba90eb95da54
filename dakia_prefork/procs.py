"""Whether a process is alive: shared by the pid file (is a master running?) and the
shared-memory sweep (did the master that made this segment die?)."""
from __future__ import annotations

import os


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
