"""The master: binds, forks, supervises, reloads, stops. Synchronous, no gevent, no HTTP.

Theory of operation
-------------------
Signal handlers only append the signal number to a queue and write a byte to a pipe
(``signal.set_wakeup_fd``); the main loop sleeps in ``select`` on that pipe (at most one
second, so heartbeats are checked even when nothing happens) and does all the work itself,
in order, outside signal context. This is the gunicorn/nginx arbiter pattern: no handler
ever runs while the loop is half-way through changing its own state.

State the master keeps:

- ``workers``: pid -> slot for live workers; ``slots`` target count;
- the listening sockets (one per slot per TCP listener), never closed while running, so
  replacing a worker never drops a queued connection;
- the shared-memory segments (control block, counters), created before the first fork and
  unlinked on exit; stale ones of dead masters of the same state dir are swept at start;
- the published config version (written to the store and to the control block).

A worker that dies is reaped and its slot refilled at once, unless the slot keeps dying at
boot: then the slot backs off exponentially (up to ``_MAX_BACKOFF`` seconds) so a broken
config or a crash-at-import does not turn into a fork storm.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import signal
import time
from typing import Any

from ..config import ConfigError, load
from ..config.store import ConfigStore
from ..shm.control import MAX_SLOTS, ControlBlock
from ..shm.counters import CounterTable
from ..shm.segment import Segment, segment_name, sweep_stale
from . import pidfile
from .checks import runtime_errors
from .listeners import BindError, Listener, bind_all, specs_of

log = logging.getLogger("dakia.master")

_COUNTER_CAPACITY = 4096
_QUICK_DEATH = 2.0          # a worker dying sooner than this after boot counts as a boot crash
_MAX_BACKOFF = 16.0
_STOP_GRACE_AFTER_TERM = 5.0

_HANDLED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
            signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2)


class StartError(Exception):
    """The master cannot start; the message says why (config errors, bind errors...)."""


class Master:
    def __init__(self, config_path: str, config: dict[str, Any],
                 workers_override: int | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.slots = workers_override or _resolve_workers(config.get("workers", "auto"))
        if self.slots > MAX_SLOTS:
            raise StartError(f"workers: at most {MAX_SLOTS}")
        self.pid = os.getpid()
        self.state_dir = config["state_dir"]
        self.pid_file = config["pid_file"]
        self.store = ConfigStore(self.state_dir)
        self.workers: dict[int, int] = {}            # pid -> slot
        self.spawned_at: dict[int, float] = {}       # pid -> time
        self.slot_failures = [0] * MAX_SLOTS
        self.slot_not_before = [0.0] * MAX_SLOTS
        self.listeners: list[Listener] = []
        self.segments: list[Segment] = []
        self.version = 0
        self._signals: list[int] = []
        self._stopping: str | None = None            # None, "graceful" or "fast"
        self._stop_deadline = 0.0
        self._wake_r = self._wake_w = -1
        self.started = time.time()

    # -- start ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything before the first fork; raises StartError with a clear message."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        for name in sweep_stale(self.state_dir):
            log.info("removed stale shared-memory segment %s", name)
        try:
            self.listeners = bind_all(specs_of(self.config), self.slots)
        except BindError as exc:
            raise StartError(f"cannot listen: {exc}") from None
        control = Segment(segment_name(self.state_dir, self.pid, "control"), ControlBlock.SIZE,
                          create=True)
        counters = Segment(segment_name(self.state_dir, self.pid, "counters"),
                           CounterTable.size_for(_COUNTER_CAPACITY), create=True)
        self.segments = [control, counters]
        self.control = ControlBlock(control)
        self.control.initialise(self.pid)
        self.version = self.store.write(self.config, int(self.config.get("keep_versions", 10)))
        self.control.publish_version(self.version)
        try:
            pidfile.write(self.pid_file, self.pid)
        except pidfile.PidFileError as exc:
            self.cleanup()
            raise StartError(str(exc)) from None
        self._install_signals()

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> int:
        log.info("dakia-master %d: config v%d, %d worker(s), listening on %s", self.pid,
                 self.version, self.slots, ", ".join(l.spec.label for l in self.listeners))
        try:
            self._spawn_missing()
            while True:
                self._wait_for_event(1.0)
                self._reap()
                while self._signals:
                    self._handle_signal(self._signals.pop(0))
                if self._stopping:
                    if not self.workers:
                        break
                    if time.monotonic() > self._stop_deadline:
                        self._kill_all(signal.SIGKILL)
                    continue
                self._check_heartbeats()
                self._spawn_missing()
        finally:
            self.cleanup()
        log.info("dakia-master %d: stopped", self.pid)
        return 0

    def _wait_for_event(self, timeout: float) -> None:
        try:
            ready, _, _ = select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return                       # _reap runs every loop
        if sig == signal.SIGQUIT:
            self.stop(graceful=True)
        elif sig in (signal.SIGTERM, signal.SIGINT):
            self.stop(graceful=False)
        elif sig == signal.SIGHUP:
            self.reload()
        elif sig == signal.SIGUSR1:
            self._signal_workers(signal.SIGUSR1)
        elif sig == signal.SIGTTIN:
            if self.slots < MAX_SLOTS:
                log.info("TTIN: growing to %d workers is not supported yet", self.slots + 1)
        elif sig in (signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2):
            log.warning("signal %s is not supported yet; ignored", signal.Signals(sig).name)

    # -- workers -------------------------------------------------------------------------
    def _spawn_missing(self) -> None:
        taken = set(self.workers.values())
        now = time.monotonic()
        for slot in range(self.slots):
            if slot not in taken and now >= self.slot_not_before[slot]:
                self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        sockets = [(l.sockets[slot], l.spec) for l in self.listeners]
        pid = os.fork()
        if pid == 0:
            self._become_worker(slot, sockets)
        self.workers[pid] = slot
        self.spawned_at[pid] = time.monotonic()
        log.info("worker %d started in slot %d", pid, slot)

    def _become_worker(self, slot: int, sockets: list[tuple[Any, Any]]) -> None:
        # In the child. Import here: the master itself must never load gevent.
        from ..worker.context import ListenerInfo
        from ..worker.main import run_worker
        os.close(self._wake_r)
        os.close(self._wake_w)
        mine = {id(s) for s, _ in sockets}
        for listener in self.listeners:
            for sock in listener.sockets:
                if id(sock) not in mine:
                    sock.close()
        listeners = [(sock, ListenerInfo(spec.gateway, "http", spec.label))
                     for sock, spec in sockets]
        run_worker(slot, listeners, self.config, self.version, self.segments[0],
                   self.segments[1])

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            lived = time.monotonic() - self.spawned_at.pop(pid, 0.0)
            self.control.clear(slot)
            how = _describe(status)
            if self._stopping:
                log.info("worker %d (slot %d) %s", pid, slot, how)
                continue
            if lived < _QUICK_DEATH:
                self.slot_failures[slot] += 1
                delay = min(_MAX_BACKOFF, 0.25 * 2 ** (self.slot_failures[slot] - 1))
                self.slot_not_before[slot] = time.monotonic() + delay
                log.error("worker %d (slot %d) %s %.1fs after start; respawning in %.2fs",
                          pid, slot, how, lived, delay)
            else:
                self.slot_failures[slot] = 0
                log.error("worker %d (slot %d) %s; respawning", pid, slot, how)

    def _check_heartbeats(self) -> None:
        timeout = float(self.config.get("worker_timeout", 30))
        now = time.time()
        for pid, slot in list(self.workers.items()):
            record = self.control.record(slot)
            if record.pid == pid and now - record.heartbeat > timeout:
                log.error("worker %d (slot %d) missed its heartbeat for %.0fs; killing it",
                          pid, slot, now - record.heartbeat)
                _kill(pid, signal.SIGKILL)

    def _signal_workers(self, sig: int) -> None:
        for pid in list(self.workers):
            _kill(pid, sig)

    def _kill_all(self, sig: int) -> None:
        self._signal_workers(sig)

    # -- reload and stop -----------------------------------------------------------------
    def reload(self) -> str | None:
        """Re-read the source file; publish it if valid. Returns the error text or None."""
        try:
            config, notices = load(self.config_path)
            errors = runtime_errors(config)
            if errors:
                raise ConfigError(errors)
        except ConfigError as exc:
            log.error("reload refused, config unchanged:\n%s", exc)
            return str(exc)
        for notice in notices:
            log.info("notice: %s", notice)
        if specs_of(config) != specs_of(self.config):
            message = ("reload refused: bind_addresses changed; listener changes need a "
                       "restart in this version")
            log.error(message)
            return message
        config["state_dir"], config["pid_file"] = self.state_dir, self.pid_file
        self.config = config
        self.version = self.store.write(config, int(config.get("keep_versions", 10)))
        self.control.publish_version(self.version)
        self._signal_workers(signal.SIGHUP)
        log.info("reload: published config v%d", self.version)
        return None

    def stop(self, graceful: bool) -> None:
        if self._stopping == "fast" or (self._stopping and graceful):
            return
        self._stopping = "graceful" if graceful else "fast"
        if graceful:
            wait = float(self.config.get("graceful_timeout", 30)) + _STOP_GRACE_AFTER_TERM
            log.info("graceful stop: draining workers (up to %.0fs)", wait)
            self._signal_workers(signal.SIGQUIT)
        else:
            wait = _STOP_GRACE_AFTER_TERM
            log.info("fast stop")
            self._signal_workers(signal.SIGTERM)
        self._stop_deadline = time.monotonic() + wait

    def cleanup(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        for segment in self.segments:
            segment.unlink()
        self.segments = []
        pidfile.remove(self.pid_file, self.pid)


def _resolve_workers(value: Any) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    return int(value)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
