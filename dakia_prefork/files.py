"""File operations several layers need: write a whole buffer to a descriptor, write a new
file ready to be renamed over another, and remove a file whose absence is as good as its
removal. A leaf: only ``os`` and ``tempfile``."""
from __future__ import annotations

import os
import tempfile


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def remove_quietly(path: str) -> None:
    """Remove ``path``; a failure (already gone, not permitted) is ignored."""
    try:
        os.unlink(path)
    except OSError:
        pass


def write_temporary(directory: str, data: bytes, mode: int, suffix: str = "") -> str:
    """Write ``data`` to a new file in ``directory`` with ``mode``, synced to disk; its path,
    for an atomic rename over the file it replaces (in the same directory, so the rename
    never crosses file systems). Removed again if writing fails."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    try:
        os.fchmod(fd, mode)
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_quietly(path)
        raise
    os.close(fd)
    return path
