"""Loading a new config off the master's loop: a short-lived child with a time and memory bound.

Theory of operation
-------------------
Reading and validating a file can take long (a big YAML file: seconds per megabyte in pure
Python) and much memory. Done in the master, that stalls supervision: dead workers are not
replaced, heartbeats are not checked, signals wait. So on HUP the master forks a loader
child and goes on with its loop:

- the child caps its address space (``RLIMIT_AS`` = ``config_load.max_memory_bytes``),
  asks for SIGKILL should the master die, and arms an alarm as a last resort; it loads and
  validates the file exactly as ``check`` does and writes one JSON document to a pipe:
  ``{"config": ..., "notices": [...], "source": ...}`` or ``{"errors": [...]}``; then it
  ``_exit``s. The same job loads a document sent to the admin API (``load`` says what);
- the master adds the pipe's read end to the ``select`` of its loop, reads what is there
  each turn without blocking, and when the pipe ends it has the verdict. At
  ``config_load.timeout`` it SIGKILLs the child and the reload fails with that reason. The
  child is reaped by the master's ordinary ``waitpid(-1)``, which hands its status here.

Why not ``multiprocess``: the job is one fork and one pipe, and the master must multiplex
that pipe with its own wakeup fd in one ``select``; a process pool or ``Process`` object
brings its own reaping (``waitpid`` on its pids, a resource tracker) that would race the
master's, for nothing the two system calls do not do.

What the child sends is bounded (:data:`MAX_RESULT_BYTES`); a bigger answer fails the
reload instead of growing the master.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

from ..config.errors import excerpt
from ..config.model import ConfigLoadSettings
from ..files import write_all
from ..procs import die_with_parent, reset_master_signals, set_title

log = logging.getLogger("dakia.master")

# A normalised config from a file within config/bounds.py's limits (8 MiB, 64 MiB of text
# after aliases) fits with room to spare.
MAX_RESULT_BYTES = 128 * 1024 * 1024
_READ_CHUNK = 1 << 20


@dataclass
class Loaded:
    """The loader's verdict: a normalised config and its notices, or the errors."""

    config: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    source: dict[str, Any] | None = None
    """The document the config was made from (the store keeps it beside the version)."""
    persisted: str | None = None
    """A file the loader wrote beside the config file, to be renamed over it once published."""
    revision: int | None = None
    """The etcd mod_revision of the shared document (config_source), recorded with the
    version (config/store.py meta)."""


class ReloadJob:
    """One loader child and the master's end of its pipe."""

    def __init__(self, pid: int, fd: int, deadline: float, limits: ConfigLoadSettings,
                 path: str) -> None:
        self.pid = pid
        self.fd = fd
        self.deadline = deadline
        self.limits = limits
        self.path = path
        self.status: int | None = None       # set by the master's reaper
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False

    @classmethod
    def start(cls, path: str, limits: ConfigLoadSettings, now: float,
              in_child: Callable[[], None], load: Callable[[str], Loaded]) -> ReloadJob:
        """Fork the loader. ``in_child`` drops what the child must not keep (the master's
        fds); ``load`` does the work there. Raises OSError when pipe or fork fails."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            raise
        if pid == 0:
            os.close(r)
            _child(w, path, limits, in_child, load)
        os.close(w)
        os.set_blocking(r, False)
        return cls(pid, r, now + limits.timeout, limits, path)

    def read(self) -> None:
        """Take what the pipe holds now; never blocks."""
        while not self._eof:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if not chunk:
                self._eof = True
                return
            self._size += len(chunk)
            if self._size > MAX_RESULT_BYTES:
                self._eof = True            # poll() reports it; the rest is not read
                return
            self._chunks.append(chunk)

    def poll(self, now: float) -> Loaded | None:
        """The verdict once there is one, else None. Kills the child at the deadline."""
        self.read()
        if self._size > MAX_RESULT_BYTES:
            self.kill()
            return Loaded(errors=[f"{self.path}: its normalised form is larger than "
                                  f"{MAX_RESULT_BYTES} bytes"])
        if self._eof and (self._chunks or self.status is not None):
            self.close()
            return self._verdict()
        if now >= self.deadline:
            self.kill()
            return Loaded(errors=[f"{self.path}: loading took longer than config_load.timeout "
                                  f"({self.limits.timeout:g}s); the loader was killed"])
        return None

    def _verdict(self) -> Loaded:
        data = b"".join(self._chunks)
        self._chunks = []
        if not data:
            assert self.status is not None
            return Loaded(errors=[f"{self.path}: the config loader {_how(self.status, self.limits)}"])
        try:
            result = json.loads(data)
        except ValueError as exc:
            return Loaded(errors=[f"{self.path}: the config loader sent no verdict ({exc})"])
        if result.get("errors"):
            return Loaded(errors=[str(e) for e in result["errors"]])
        return Loaded(config=result["config"], notices=list(result.get("notices", [])),
                      source=result.get("source"), persisted=result.get("persisted"),
                      revision=result.get("revision"))

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def running(self) -> bool:
        """The pipe may still bring data: worth a place in the loop's ``select`` (after its
        end, until the child is reaped, it would only make ``select`` return at once)."""
        return self.fd >= 0 and not self._eof


def _how(status: int, limits: ConfigLoadSettings) -> str:
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        if os.WTERMSIG(status) in (signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL):
            return (f"was killed by {name} (out of memory? config_load.max_memory_bytes is "
                    f"{limits.max_memory_bytes})")
        return f"was killed by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)} without a verdict"


def _child(w: int, path: str, limits: ConfigLoadSettings, in_child: Callable[[], None],
           load: Callable[[str], Loaded]) -> NoReturn:
    code = 3
    try:
        reset_master_signals()
        die_with_parent(signal.SIGKILL)
        set_title("config loader")
        in_child()
        # Made before the limit: once memory is short, even this message may not be.
        out_of_memory = json.dumps({"errors": [
            f"{path}: loading it needs more memory than config_load.max_memory_bytes "
            f"({limits.max_memory_bytes})"]}).encode()
        # A last resort should the master stop reading (it kills us at the deadline).
        signal.alarm(int(limits.timeout) + 5)
        resource.setrlimit(resource.RLIMIT_AS, (limits.max_memory_bytes,
                                                limits.max_memory_bytes))
        try:
            write_all(w, _verdict_of(path, load))
        except MemoryError:
            write_all(w, out_of_memory)
        code = 0
    except BaseException:  # noqa: BLE001 - never unwind into the master's code
        code = 4
    finally:
        os._exit(code)


def _verdict_of(path: str, load: Callable[[str], Loaded]) -> bytes:
    try:
        loaded = load(path)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the verdict, whatever went wrong
        loaded = Loaded(errors=[f"{path}: cannot be loaded: {type(exc).__name__}: "
                                f"{excerpt(str(exc), 300)}"])
    if loaded.errors:
        return json.dumps({"errors": loaded.errors}).encode()
    return json.dumps({"config": loaded.config, "notices": loaded.notices,
                       "source": loaded.source, "persisted": loaded.persisted,
                       "revision": loaded.revision}).encode()
