"""Named POSIX shared-memory segments, and the naming scheme that lets a new master sweep old ones.

A segment is named ``/dakia-<tag>-<pid>-<role>`` where ``tag`` is a short hash of the state
directory (two gateways on one machine with different state dirs never collide) and ``pid`` is
the master that created it. A master that dies without cleaning up (SIGKILL, power cut of the
process, a bug) leaves segments behind in /dev/shm; the next master of the same state dir
removes every segment whose creator pid is no longer alive. During a binary upgrade the old
master is alive, so its segments are left alone.
"""
from __future__ import annotations

import hashlib
import mmap
import os

import posix_ipc

from ..procs import alive

_SHM_DIR = "/dev/shm"


def state_tag(state_dir: str) -> str:
    """Eight hex digits naming a state directory in segment names."""
    return hashlib.sha1(os.path.abspath(state_dir).encode()).hexdigest()[:8]


def segment_name(state_dir: str, master_pid: int, role: str) -> str:
    return f"/dakia-{state_tag(state_dir)}-{master_pid}-{role}"


def sweep_stale(state_dir: str) -> list[str]:
    """Unlink segments of this state dir whose creating master is dead; return their names."""
    prefix = f"dakia-{state_tag(state_dir)}-"
    removed: list[str] = []
    try:
        entries = os.listdir(_SHM_DIR)
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid_part = entry[len(prefix):].split("-", 1)[0]
        if not pid_part.isdigit() or alive(int(pid_part)):
            continue
        try:
            posix_ipc.unlink_shared_memory("/" + entry)
            removed.append("/" + entry)
        except posix_ipc.ExistentialError:
            pass
    return removed


class Segment:
    """A shared-memory segment mapped read-write into this process.

    The master creates segments (``create=True``) before forking, so workers inherit the
    mapping and the descriptor; other processes (``dakia-master status``) attach by name.
    The descriptor stays open because the byte-range locks of ``RangeLock`` live on it.
    """

    __slots__ = ("name", "size", "fd", "buf")

    def __init__(self, name: str, size: int, *, create: bool) -> None:
        if create:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
        else:
            shm = posix_ipc.SharedMemory(name)
            size = shm.size
        self.name = name
        self.size = size
        self.fd: int = shm.fd
        self.buf = mmap.mmap(self.fd, size)

    def unlink(self) -> None:
        try:
            posix_ipc.unlink_shared_memory(self.name)
        except posix_ipc.ExistentialError:
            pass

    def close(self) -> None:
        try:
            self.buf.close()
        except BufferError:
            # A memoryview still points into the mapping; the process is going away anyway.
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
