"""Two file operations several layers need: write a whole buffer to a descriptor, and
remove a file whose absence is as good as its removal. A leaf: only ``os``."""
from __future__ import annotations

import os


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
