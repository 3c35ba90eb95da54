"""The master: binds, forks, supervises, reloads, upgrades, stops. Synchronous, no gevent.

Theory of operation
-------------------
Signal handlers only append the signal number to a queue; ``signal.set_wakeup_fd`` makes
the main loop's ``select`` return, and the loop does all the work itself, in order, outside
signal context (the gunicorn/nginx arbiter pattern).

The loop is a reconciler. It holds a *desired* state — ``slots`` workers, each serving the
sockets ``assignment(slot)`` of the current listeners — and every turn it compares that with
the workers it has:

- a slot with no live, non-draining worker of the desired assignment gets one (at once, or
  after the slot's back-off when it keeps dying at boot);
- once every slot has a *ready* worker of the desired assignment, every other worker (an
  old assignment after a listener change or TTIN/TTOU, a slot above ``slots``) is sent QUIT
  and drains. Nothing is stopped before its replacement serves, so a rolling change drops
  nothing.

- a slot that has had no ready worker for COVER_GRACE (boot back-off) is marked vacant in
  the control block, and the ready workers accept on its sockets too until it is filled
  (worker/cover.py), so nothing waits in its queue for the back-off.

Processes and time go through ``spawner`` and ``clock`` (master/spawner.py), so these
decisions are unit-tested without forking (tests/unit/test_reconcile.py).

A reload never blocks the loop: the file is loaded in a child (master/reloader.py) whose
pipe the loop's ``select`` watches; the verdict is applied when it arrives.

The admin API runs in a child of its own (admin/), which sends each change over a control
channel (master/admin_link.py) the same ``select`` watches. A change is loaded by the same
loader child as a HUP, one job at a time (HUPs and changes in arrival order), and its
``If-Match`` version is compared with the running one when the verdict is applied, here,
so concurrent changes never interleave.

Sockets are never closed while the master runs, except those of listeners removed by a
reload, and only once no live worker serves them. A socket slot beyond ``slots`` (after
TTOU) stays open and is assigned to a remaining worker (``index % slots``), so shrinking
drops nothing either.

Binary upgrade (USR2): the pid file becomes ``<pid_file>.oldbin`` and the master forks and
execs ``dakia-master start`` with every listening descriptor in ``DAKIA_INHERIT_FDS``. The
new master adopts them and serves alongside; ``dakia-master upgrade`` then QUITs the old
one. If the new master exits first, the old one restores its pid file and keeps serving.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

from ..admin.channel import bounded_errors
from ..config import ConfigError, load_source, validate
from ..config.bounds import read_bounded
from ..config.model import NotApplied, Settings, keeping_running, restart_only_changes
from ..config.source import is_json_path, parse_document, render_document
from ..config.store import ConfigStore
from ..files import remove_quietly, write_temporary
from ..fleet.loaders import document_loader, hup_loader
from ..fleet.state import stale_documents
from ..logs import detached, detached_target_problem, reopen_logs, setup_logging
from ..shm.control import MAX_SLOTS, ControlBlock
from ..shm.instance import InstanceSegments
from ..shm.nodestats import NodeStats
from ..shm.segment import sweep_stale
from . import pidfile, sdnotify
from .admin_link import AdminLink
from .checks import runtime_errors
from .follower_link import FollowerLink
from .helpers import MAX_BACKOFF as _MAX_BACKOFF, HelperChild, describe_exit as _describe
from .reloader import Loaded, ReloadJob
from .spawner import OsSpawner, Spawner
from .listeners import (INHERIT_ENV, BindError, Listener, ListenerSpec, bind, inherit_value,
                        inherited_sockets, open_listeners, spec_key, specs_of)

log = logging.getLogger("dakia.master")

# Half the control block's records: during a rolling change two workers serve each slot.
MAX_WORKERS = MAX_SLOTS // 2
_STOP_GRACE_AFTER_TERM = 5.0
_BUSY_TICK = 0.05           # loop period while something is starting or draining
# How long a slot may have no ready worker before the others also accept on its sockets
# (long enough that an ordinary respawn or a rolling change does not trigger it).
COVER_GRACE = 2.0
_IDLE_TICK = 1.0

_HANDLED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
            signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2)

Assignment = tuple[tuple[tuple[str, str, int], str, int], ...]   # (listener key, gateway, index)


class StartError(Exception):
    """The master cannot start; the message says why (config errors, bind errors...)."""


@dataclass
class WorkerProc:
    pid: int
    slot: int
    record: int
    generation: int
    assignment: Assignment
    spawned: float
    draining_since: float | None = None


@dataclass
class _Listeners:
    """The current listeners by address, and removed ones still served by old workers."""

    current: dict[tuple[str, str, int], Listener] = field(default_factory=dict)
    retired: list[Listener] = field(default_factory=list)


@dataclass
class _Reload:
    """What a reload did: the errors that refused it, or the settings it did not apply."""

    errors: list[str] = field(default_factory=list)
    not_applied: list[NotApplied] = field(default_factory=list)
    file_state_dir: str | None = None        # the state_dir the file names
    persist_error: str | None = None         # published, but not written to the file


class Master:
    def __init__(self, config_path: str, config: dict[str, Any],
                 workers_override: int | None = None, ready_fd: int = -1,
                 settings: Settings | None = None, spawner: Spawner | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 source: dict[str, Any] | None = None, revision: int | None = None) -> None:
        self.config_path = config_path
        # Processes and time go through these two (tests/unit/test_reconcile.py fakes them).
        self.spawner: Spawner = spawner if spawner is not None else OsSpawner()
        self.clock = clock
        self.ready_fd = ready_fd          # `start --daemon` waits on it for "ok"
        # The published config (what workers load) and its typed settings, always a pair.
        self.config = config
        self.settings = settings if settings is not None else Settings.from_config(config)
        self.workers_override = workers_override
        self.slots = workers_override or _resolve_workers(self.settings.workers)
        if self.slots > MAX_WORKERS:
            raise StartError(f"workers: at most {MAX_WORKERS}")
        self.pid = os.getpid()
        # Restart-only (config/model.py RESTART_ONLY): fixed for this master's life.
        self.state_dir = self.settings.state_dir
        self.pid_file = self.settings.pid_file
        self.store = ConfigStore(self.state_dir)
        self.workers: dict[int, WorkerProc] = {}
        self.free_records = list(range(MAX_SLOTS - 1, -1, -1))
        self._records_exhausted = False
        self.checker = HelperChild("health checker", lambda s: s.has_health_checks,
                                   self._become_checker)
        self.acme = HelperChild("acme process", lambda s: bool(s.acme), self._become_acme)
        # config_source: the process that follows etcd and hands documents over.
        self.follower = FollowerLink(self._become_follower)
        # The first version's source document and, on an etcd source, its mod_revision
        # (None: the source is the file, read again at setup).
        self._start_source = source
        self.revision = revision
        self.slot_failures = [0] * MAX_SLOTS
        self.slot_not_before = [0.0] * MAX_SLOTS
        # Since when each slot has had no ready worker (None: it has one), and the slots
        # the control block currently asks the ready workers to cover.
        self.slot_vacant_since: list[float | None] = [None] * MAX_SLOTS
        self.covered: frozenset[int] = frozenset()
        self.listeners = _Listeners()
        self.generation = 1
        self.segments: InstanceSegments | None = None
        self.version = 0
        self.winched = False
        self.upgrade_child: int | None = None
        self.notified_ready = False
        self._signals: list[int] = []
        self._stopping: str | None = None            # None, "graceful" or "fast"
        self._stop_deadline = 0.0
        self._wake_r = self._wake_w = -1
        self.reload_job: ReloadJob | None = None     # the config loader child, during HUP
        self._reload_again = False                   # a HUP came while one was loading
        self.admin: AdminLink | None = None          # the admin process and its listener
        self.admin_calls: deque[dict[str, Any]] = deque()   # its requests, in order
        self.job_call: dict[str, Any] | None = None  # the one the loader works on (None: HUP)
        self.admin_next: tuple[AdminLink | None] | None = None   # a reload moved the admin
        self._helper_pids: dict[str, int | None] = {}  # as the control block shows them

    # -- start ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything before the first fork; raises StartError with a clear message."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        try:
            _check_log_file(self.settings.access_log, "access_log")
        except OSError as exc:
            raise StartError(str(exc)) from None
        for name in sweep_stale(self.state_dir):
            log.info("removed stale shared-memory segment %s", name)
        if self.settings.etcd is not None:
            # Documents a follower of an earlier master handed over and nobody loaded.
            for path in stale_documents(self.state_dir):
                remove_quietly(path)
        inherited = inherited_sockets(os.environ)   # type: ignore[arg-type]
        if inherited:
            log.info("adopting %d inherited listening socket(s)",
                     sum(len(v) for v in inherited.values()))
        try:
            admin_spec = _admin_spec(self.settings)
            if admin_spec is not None:
                self.admin = AdminLink(open_listeners([admin_spec], 1, {
                    spec_key(admin_spec): inherited.pop(spec_key(admin_spec), [])})[0])
            for listener in open_listeners(specs_of(self.config), self.slots, inherited):
                self.listeners.current[spec_key(listener.spec)] = listener
        except BindError as exc:
            raise StartError(f"cannot listen: {exc}") from None
        self.segments = InstanceSegments.create(self.state_dir, self.pid)
        self.control = ControlBlock(self.segments.control)
        self.node_stats = NodeStats(self.segments.nodes)
        self.control.initialise(self.pid)
        self.version = self.store.write(
            self.config, self.settings.keep_versions,
            source=(self._start_source if self.settings.etcd is not None
                    else _source_of(self.config_path)),
            meta=self._meta(self.settings, self.revision))
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
                 self.version, self.slots,
                 ", ".join(l.spec.label for l in self.listeners.current.values()))
        try:
            self._reconcile()
            while True:
                self._wait_for_event(_BUSY_TICK if self._busy() else _IDLE_TICK)
                self._reap()
                while self._signals:
                    self._handle_signal(self._signals.pop(0))
                if self._stopping:
                    if not self.workers:
                        break
                    if self.clock() > self._stop_deadline:
                        self._signal_workers(signal.SIGKILL)
                    continue
                self._poll_reload()
                self._serve_admin()
                self._check_health()
                self._reconcile()
        finally:
            self.cleanup()
        log.info("dakia-master %d: stopped", self.pid)
        return 0

    def _busy(self) -> bool:
        return bool(self._stopping) or not self.control.ready or any(
            w.draining_since is not None for w in self.workers.values())

    def _wait_for_event(self, timeout: float) -> None:
        fds = [self._wake_r]
        writable: list[int] = []
        job = self.reload_job
        if job is not None and job.running:
            fds.append(job.fd)        # the loader's verdict wakes the loop as a signal does
            timeout = max(0.0, min(timeout, job.deadline - time.monotonic()))
        if self.follower.fd is not None:
            fds.append(self.follower.fd)         # and a document the follower hands over
        if self.admin is not None and self.admin.fd is not None:
            fds.append(self.admin.fd)            # so does a request of the admin process
            if self.admin.wants_write:
                writable.append(self.admin.fd)
        try:
            ready, can_write, _ = select.select(fds, writable, [], timeout)
        except InterruptedError:
            return
        if can_write and self.admin is not None:
            self.admin.flush()
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return                       # _reap runs every turn
        if sig == signal.SIGQUIT:
            self.stop(graceful=True)
        elif sig in (signal.SIGTERM, signal.SIGINT):
            self.stop(graceful=False)
        elif sig == signal.SIGHUP:
            if self.winched:
                # As nginx: HUP to a master whose workers were stopped by WINCH starts them
                # again on the config it has (the way back from an abandoned upgrade).
                self.winched = False
                log.info("HUP after WINCH: starting workers again")
            else:
                self.reload()
        elif sig == signal.SIGUSR1:
            reopen_logs()
            self._signal_workers(signal.SIGUSR1)
            self.checker.signal(self.spawner, signal.SIGUSR1)        # it logs too
            self.acme.signal(self.spawner, signal.SIGUSR1)           # so does ACME
            self.follower.signal(self.spawner, signal.SIGUSR1)       # and the follower
            if self.admin is not None and self.admin.pid is not None:
                self.spawner.kill(self.admin.pid, signal.SIGUSR1)   # so does the admin API
            log.info("USR1: log files reopened")
        elif sig == signal.SIGUSR2:
            self.upgrade()
        elif sig == signal.SIGWINCH:
            self.winched = True
            log.info("WINCH: stopping the workers gracefully, the master stays")
            for worker in self.workers.values():
                self._retire(worker)
        elif sig == signal.SIGTTIN:
            self._resize(self.slots + 1)
        elif sig == signal.SIGTTOU:
            self._resize(self.slots - 1)

    # -- the desired state ---------------------------------------------------------------
    def assignment(self, slot: int) -> Assignment:
        """The sockets worker ``slot`` serves: socket ``i`` of every listener with
        ``i % slots == slot`` (one shared socket for unix listeners)."""
        out = []
        for key, listener in self.listeners.current.items():
            if listener.shared:
                out.append((key, listener.spec.gateway, 0))
                continue
            for index in range(slot, len(listener.sockets), self.slots):
                out.append((key, listener.spec.gateway, index))
        return tuple(out)

    def _reconcile(self) -> None:
        if self._stopping or self.winched:
            self.control.set_ready(False)
            return
        now = self.clock()
        self.checker.supervise(self.spawner, self.settings, now)
        self.acme.supervise(self.spawner, self.settings, now)
        self.follower.supervise(self.spawner, self.settings, now)
        self._supervise_admin(now)
        self._publish_helpers()
        desired = [self.assignment(slot) for slot in range(self.slots)]
        serving = [w for w in self.workers.values() if w.draining_since is None]
        all_ready = True
        for slot in range(self.slots):
            mine = [w for w in serving if w.slot == slot and w.assignment == desired[slot]]
            if not mine:
                all_ready = False
                if now >= self.slot_not_before[slot]:
                    self._spawn(slot, desired[slot])
            elif not any(self.control.record(w.record).state == "ready" for w in mine):
                all_ready = False
        self._cover_vacant_slots(now, serving)
        self.control.set_ready(all_ready)
        if not all_ready:
            return
        self.slot_failures = [0] * MAX_SLOTS
        for worker in serving:
            if worker.slot >= self.slots or worker.assignment != desired[worker.slot]:
                self._retire(worker)
        self._close_retired_listeners()
        if not self.notified_ready:
            self.notified_ready = True
            sdnotify.notify(f"READY=1\nMAINPID={self.pid}\nSTATUS=serving config "
                            f"v{self.version} with {self.slots} worker(s)")
            if self.ready_fd >= 0:
                try:
                    os.write(self.ready_fd, b"ok")
                    os.close(self.ready_fd)
                except OSError:
                    pass
                self.ready_fd = -1
            log.info("ready: %d worker(s) serving config v%d", self.slots, self.version)

    def _cover_vacant_slots(self, now: float, serving: list[WorkerProc]) -> None:
        """Ask the ready workers to also accept on the sockets of a slot that has had no
        ready worker (of any assignment) for COVER_GRACE, until it has one again: the
        connections the kernel queued on that slot's socket are served meanwhile."""
        ready_slots = {w.slot for w in serving
                       if self.control.record(w.record).state == "ready"}
        vacant = set()
        for slot in range(self.slots):
            if slot in ready_slots:
                self.slot_vacant_since[slot] = None
                continue
            since = self.slot_vacant_since[slot]
            if since is None:
                self.slot_vacant_since[slot] = since = now
            if now - since >= COVER_GRACE:
                vacant.add(slot)
        covered = frozenset(vacant) if ready_slots else frozenset()
        if covered != self.covered:
            self.covered = covered
            self.control.set_vacant(covered)
            if covered:
                log.warning("slot(s) %s without a ready worker: the other workers also "
                            "accept on their sockets", ", ".join(map(str, sorted(covered))))
            else:
                log.info("every slot has a ready worker again; covering stops")

    def _retire(self, worker: WorkerProc) -> None:
        if worker.draining_since is None:
            worker.draining_since = self.clock()
            self.spawner.kill(worker.pid, signal.SIGQUIT)

    def _close_retired_listeners(self) -> None:
        if not self.listeners.retired:
            return
        in_use = {key for w in self.workers.values() for key, _gw, _i in w.assignment}
        keep = []
        for listener in self.listeners.retired:
            if spec_key(listener.spec) in in_use:
                keep.append(listener)
            else:
                log.info("closed listener %s", listener.spec.label)
                listener.close()
        self.listeners.retired = keep

    def _resize(self, slots: int) -> str | None:
        """Aim for ``slots`` workers (TTIN, TTOU, a reload); None, or why it cannot."""
        if not 1 <= slots <= MAX_WORKERS:
            log.warning("worker count stays %d (allowed: 1..%d)", self.slots, MAX_WORKERS)
            return f"the master allows 1..{MAX_WORKERS}"
        try:
            for listener in self.listeners.current.values():
                listener.grow(slots)
        except BindError as exc:
            log.error("cannot grow to %d workers: %s", slots, exc)
            return f"the master cannot grow its listeners ({exc})"
        log.info("workers: %d -> %d", self.slots, slots)
        self.slots = slots
        self.generation += 1
        return None

    # -- workers -------------------------------------------------------------------------
    def _spawn(self, slot: int, assignment: Assignment) -> None:
        if not self.free_records:
            # Every control-block record is taken (workers draining slowly while changes
            # keep coming): wait for some to exit rather than fork a worker nobody can see.
            if not self._records_exhausted:
                self._records_exhausted = True
                log.error("no free worker record; new workers wait for draining ones to exit")
            return
        self._records_exhausted = False
        record = self.free_records.pop()
        sockets = []
        for key, gateway, index in assignment:
            listener = self.listeners.current[key]
            sockets.append((listener.socket_for(index), gateway, listener.spec.label))
        # The sockets of the other slots too, idle unless the master asks this worker to
        # cover a vacant slot (worker/cover.py).
        spares = []
        for other in range(self.slots):
            if other == slot:
                continue
            for key, gateway, index in self.assignment(other):
                listener = self.listeners.current[key]
                if not listener.shared:
                    spares.append((other, listener.socket_for(index), gateway,
                                   listener.spec.label))
        self.control.boot(record, 0, slot, self.generation, self.version)
        self.node_stats.note_record(record)
        pid = self.spawner.fork(lambda: self._become_worker(slot, record, sockets, spares))
        self.control.set_pid(record, pid)
        self.workers[pid] = WorkerProc(pid, slot, record, self.generation, assignment,
                                       self.clock())
        log.info("worker %d started in slot %d", pid, slot)

    def _become_worker(self, slot: int, record: int, sockets: list[tuple[Any, str, str]],
                       spares: list[tuple[int, Any, str, str]]) -> NoReturn:
        # In the child. Import here: the master itself must never load gevent.
        from ..worker.context import ListenerInfo
        from ..worker.main import run_worker
        self._drop_master_fds(keep={id(sock) for sock, _gw, _label in sockets}
                              | {id(sock) for _slot, sock, _gw, _label in spares})
        listeners = [(sock, ListenerInfo(gateway, "http", label))
                     for sock, gateway, label in sockets]
        spare = [(other, sock, ListenerInfo(gateway, "http", label))
                 for other, sock, gateway, label in spares]
        assert self.segments is not None
        run_worker(slot, record, listeners, self.config, self.version, self.segments,
                   spare=spare)

    def _drop_master_fds(self, keep: set[int] | frozenset[int] = frozenset()) -> None:
        """In a child: close what only the master may hold (its wakeup pipe, the daemon's
        ready pipe, a loader's pipe, the listening sockets but those in ``keep``, by id)."""
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.ready_fd >= 0:
            os.close(self.ready_fd)     # else `start --daemon` would wait on the children too
        if self.reload_job is not None:
            self.reload_job.close()
        self.follower.drop_in_child()
        if self.admin is not None and id(self.admin.listening) not in keep:
            self.admin.drop_in_child()
        for listener in [*self.listeners.current.values(), *self.listeners.retired]:
            for sock in listener.sockets:
                if id(sock) not in keep:
                    sock.close()

    def _reap(self) -> None:
        while True:
            reaped = self.spawner.reap()
            if reaped is None:
                self._publish_helpers()
                return
            pid, status = reaped
            if pid == self.upgrade_child:
                self._upgrade_failed(status)
                continue
            if pid == self.checker.pid:
                self.checker.exited(status, self.clock(), self._stopping is not None)
                continue
            if pid == self.acme.pid:
                self.acme.exited(status, self.clock(), self._stopping is not None)
                continue
            if pid == self.follower.pid:
                self.follower.exited(status, self.clock(), self._stopping is not None)
                continue
            if self.admin is not None and pid == self.admin.pid:
                self._admin_exited(status)
                continue
            if self.reload_job is not None and pid == self.reload_job.pid:
                self.reload_job.status = status
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            served = self.control.record(worker.record).state in ("ready", "draining")
            self.control.clear(worker.record)
            # Its in-flight counts die with it, before the record is handed out again.
            self.node_stats.clear_record(worker.record)
            self.free_records.append(worker.record)
            how = _describe(status)
            lived = self.clock() - worker.spawned
            if self._stopping or worker.draining_since is not None:
                log.info("worker %d (slot %d) %s", pid, worker.slot, how)
                continue
            slot = worker.slot
            self.control.count_worker_restart()
            if not served:
                # Died before it ever served: a crash at boot. Back off so that a cause
                # that kills every new worker does not become a fork storm.
                self.slot_failures[slot] += 1
                delay = min(_MAX_BACKOFF, 0.25 * 2 ** (self.slot_failures[slot] - 1))
                self.slot_not_before[slot] = self.clock() + delay
                log.error("worker %d (slot %d) %s %.1fs after start; respawning in %.2fs",
                          pid, slot, how, lived, delay)
            else:
                self.slot_failures[slot] = 0
                log.error("worker %d (slot %d) %s; respawning", pid, slot, how)

    # -- helper processes (master/helpers.py) --------------------------------------------
    def _publish_helpers(self) -> None:
        """Write the helpers' pids to the control block when one started or ended (for
        ``status`` and the dashboard)."""
        admin = self.admin
        pids = {"health_checker": self.checker.pid, "acme": self.acme.pid,
                "config_follower": self.follower.pid,
                "admin": None if admin is None else admin.pid}
        for role, pid in pids.items():
            if self._helper_pids.get(role) != pid:
                self._helper_pids[role] = pid
                self.control.set_helper(role, pid, time.time())

    def _become_checker(self) -> NoReturn:
        # In the child, as _become_worker: no gevent in the master, no sockets kept.
        from ..health.main import run_health_checker
        self._drop_master_fds()
        assert self.segments is not None
        run_health_checker(self.config, self.version, self.segments)

    def _become_acme(self) -> NoReturn:
        from ..acme.process import run_acme
        self._drop_master_fds()
        assert self.segments is not None
        run_acme(self.config, self.version, self.segments)

    def _become_follower(self, channel: socket.socket) -> NoReturn:
        from ..fleet.follower import run_follower
        self._drop_master_fds()
        assert self.segments is not None
        run_follower(channel, self.config, self.revision, self.segments, self.pid)

    @staticmethod
    def _meta(settings: Settings, revision: int | None) -> dict[str, Any] | None:
        """What the store records with a version beside its config (config/store.py)."""
        if settings.etcd is None:
            return None
        return {"etcd": {"key": settings.etcd.key, "mod_revision": revision}}

    def _stop_child(self, pid: int, grace: float) -> None:
        """SIGTERM a helper child, wait up to ``grace`` for it, then SIGKILL it."""
        self.spawner.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.02)
        self.spawner.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    # -- the admin process (admin/): one child when the config has an admin section ------
    def _supervise_admin(self, now: float) -> None:
        admin = self.admin
        if admin is None or admin.pid is not None or now < admin.not_before:
            return
        pid = admin.start(self.spawner, now, self._become_admin)
        log.info("admin process %d started on %s", pid, admin.listener.spec.label)

    def _become_admin(self, channel: socket.socket) -> NoReturn:
        from ..admin.main import run_admin
        assert self.admin is not None and self.segments is not None
        self._drop_master_fds(keep={id(self.admin.listening)})
        run_admin(self.admin.listening, channel, self.config, self.segments)

    def _admin_exited(self, status: int) -> None:
        assert self.admin is not None
        clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        delay = self.admin.exited(self.clock(), clean)
        if self._stopping:
            return
        if clean:
            log.info("admin process exited")
        else:
            log.error("admin process %s; respawning in %.2fs", _describe(status), delay)

    def _admin_for(self, settings: Settings) -> AdminLink | None:
        """The admin link ``settings`` ask for: the running one when its address is
        unchanged, else a new one on a newly bound listener. Raises BindError."""
        spec = _admin_spec(settings)
        if spec is None:
            return None
        if self.admin is not None and spec_key(self.admin.listener.spec) == spec_key(spec):
            return self.admin
        return AdminLink(bind(spec, 1))

    def _swap_admin(self, new: AdminLink | None) -> None:
        old, self.admin = self.admin, new
        if old is not None:
            old.flush()
            if old.pid is not None:
                self.spawner.kill(old.pid, signal.SIGTERM)   # it finishes what it answers
            old.close_channel()
            old.listener.close()
            log.info("admin listener %s closed", old.listener.spec.label)

    def _serve_admin(self) -> None:
        """Queue what the admin process asks, and start the next job if the loader is free."""
        if self.admin_next is not None:
            (new,), self.admin_next = self.admin_next, None
            self._swap_admin(new)
        if self.admin is not None:
            for call in self.admin.read():
                if self._stopping:
                    self._answer(call, {"unavailable": "the master is stopping; nothing changed"})
                else:
                    self.admin_calls.append(call)
        self.follower.read()
        if self.reload_job is None and not self._stopping:
            while self.admin_calls and self.reload_job is None:
                self._start_call(self.admin_calls.popleft())
            if self.reload_job is None and self.follower.pending is not None:
                self._follow(self.follower.take_pending())

    def _follow(self, message: dict[str, Any] | None) -> None:
        """Load a document the follower handed over, unless this node serves it already."""
        if message is None:
            return
        revision = int(message["revision"])
        if self.settings.etcd is None or (self.revision is not None
                                          and revision <= self.revision):
            FollowerLink.drop(message)
            return
        call = {"op": "follow", "revision": revision, "path": message.get("path")}
        if message.get("path") is None:
            error = f"etcd revision {revision}: {str(message.get('error', '?'))[:500]}"
            log.error("etcd revision %d refused, v%d kept: %s", revision, self.version, error)
            self._finish_reload(_Reload(errors=[error]), origin=f"etcd revision {revision}")
            return
        log.info("etcd revision %d: loading it", revision)
        self._start_job(call, str(message["path"]), document_loader(self.config_path,
                                                                    revision))

    def _start_call(self, call: dict[str, Any]) -> None:
        op = call.get("op")
        if op == "reload":
            self._start_job(call, self.config_path, self._file_loader())
            return
        path = call.get("path")
        if op not in ("check", "publish") or not isinstance(path, str):
            self._answer(call, {"errors": [f"the master does not know {str(op)[:40]!r}"]})
            return
        if self.settings.etcd is not None:
            if op == "publish":
                # The admin process writes changes to etcd; every node (this one too)
                # follows them through its watch. Nothing is published from here.
                self._answer(call, {"errors": [
                    "config_source: the shared document is in etcd; change it there"]})
                return
            self._start_job(call, path, document_loader(self.config_path, None))
            return
        persist = op == "publish" and call.get("persist") is True
        self._start_job(call, path, _candidate_loader(self.config_path, persist))

    def _file_loader(self) -> Callable[[str], Loaded]:
        """What a HUP loads: the file, or on an etcd source the local file with the shared
        document this node serves (a HUP never waits on etcd: fleet/loaders.py)."""
        if self.settings.etcd is not None:
            return hup_loader(self.store, self.version, self.revision)
        return _load_and_check

    def _answer(self, call: dict[str, Any], reply: dict[str, Any]) -> None:
        link = self.admin
        if link is not None:
            link.reply({"id": call.get("id"), **reply})

    def _answer_call(self, call: dict[str, Any], loaded: Loaded) -> None:
        """Apply (or not) the verdict on an admin process's request, and answer it."""
        if call.get("op") == "check":
            self._answer(call, {"errors": bounded_errors(loaded.errors),
                                "notices": bounded_errors(loaded.notices)})
            return
        base = call.get("base")
        origin = f"admin {str(call.get('origin', '-'))[:100]}"
        if loaded.config is not None and isinstance(base, int) and base != self.version:
            if loaded.persisted:
                remove_quietly(loaded.persisted)
            self._answer(call, {"conflict": self.version})
            return
        outcome = self._apply_loaded(loaded)
        if loaded.persisted:
            if outcome.errors:
                remove_quietly(loaded.persisted)
            else:
                try:
                    os.replace(loaded.persisted, self.config_path)
                    log.info("%s: v%d written to %s", origin, self.version, self.config_path)
                except OSError as exc:
                    remove_quietly(loaded.persisted)
                    outcome.persist_error = (f"published, but {self.config_path} could not "
                                             f"be replaced: {exc.strerror or exc}")
                    log.error("%s: %s", origin, outcome.persist_error)
        self._finish_reload(outcome, origin=origin)
        if outcome.errors:
            self._answer(call, {"errors": bounded_errors(outcome.errors)})
            return
        reply: dict[str, Any] = {"version": self.version,
                                 "not_applied": [c.line() for c in outcome.not_applied]}
        if outcome.persist_error:
            reply["persist_error"] = outcome.persist_error
        self._answer(call, reply)

    def _check_health(self) -> None:
        """Kill workers that stopped heart-beating, or drain for longer than allowed."""
        timeout = self.settings.worker_timeout
        drain_limit = self.settings.graceful_timeout + _STOP_GRACE_AFTER_TERM
        now = time.time()
        mono = self.clock()
        for worker in list(self.workers.values()):
            record = self.control.record(worker.record)
            if record.pid == worker.pid and now - record.heartbeat > timeout:
                log.error("worker %d (slot %d) sent no heartbeat for %.0fs; killing it",
                          worker.pid, worker.slot, now - record.heartbeat)
                self.spawner.kill(worker.pid, signal.SIGKILL)
            elif (worker.draining_since is not None
                  and mono - worker.draining_since > drain_limit):
                log.error("worker %d still draining after %.0fs; killing it", worker.pid,
                          mono - worker.draining_since)
                self.spawner.kill(worker.pid, signal.SIGKILL)

    def _signal_workers(self, sig: int) -> None:
        for pid in list(self.workers):
            self.spawner.kill(pid, sig)

    # -- reload --------------------------------------------------------------------------
    def reload(self) -> None:
        """Start loading the source file in a loader child (master/reloader.py); the loop
        applies the verdict when it comes (``_poll_reload``), supervising meanwhile."""
        if self.reload_job is not None:
            # The file may have changed again since the running load began: load it once
            # more afterwards, so the last HUP always sees the last file.
            self._reload_again = True
            log.info("HUP: a reload is loading; the file is loaded again after it")
            return
        log.info("HUP: loading %s", self.config_path)
        self._start_job(None, self.config_path, self._file_loader())

    def _start_job(self, call: dict[str, Any] | None, path: str,
                   load: Callable[[str], Loaded]) -> None:
        """Fork the loader for a HUP (``call`` None) or an admin process's request."""
        if call is None or call.get("op") != "check":
            sdnotify.notify("RELOADING=1")
        try:
            self.reload_job = ReloadJob.start(path, self.settings.config_load,
                                              time.monotonic(), self._drop_master_fds, load)
        except OSError as exc:
            log.error("reload refused, nothing changed: cannot start the config loader: %s",
                      exc)
            self._finish_job(call, Loaded(errors=[f"cannot start the config loader: {exc}"]))
            return
        self.job_call = call

    def _poll_reload(self) -> None:
        job = self.reload_job
        if job is None:
            return
        loaded = job.poll(time.monotonic())
        if loaded is None:
            return
        self.reload_job = None
        call, self.job_call = self.job_call, None
        self._finish_job(call, loaded)
        if self._reload_again and not self._stopping:
            self._reload_again = False
            self.reload()

    def _finish_job(self, call: dict[str, Any] | None, loaded: Loaded) -> None:
        if call is None:
            self._finish_reload(self._apply_loaded(loaded))
        elif call.get("op") == "follow":
            FollowerLink.drop(call)
            origin = f"etcd revision {call['revision']}"
            if loaded.config is None:
                log.error("%s refused, v%d (etcd revision %s) kept", origin, self.version,
                          self.revision)
            self._finish_reload(self._apply_loaded(loaded), origin=origin)
        else:
            self._answer_call(call, loaded)

    def _apply_loaded(self, loaded: Loaded) -> _Reload:
        try:
            return self._reload(loaded)
        except Exception as exc:  # noqa: BLE001 - a reload fails alone, the master serves on
            log.exception("reload failed, the running version is kept")
            return _Reload(errors=[f"reload failed: {type(exc).__name__}: {exc}"])

    def _finish_reload(self, outcome: _Reload, origin: str = "HUP") -> None:
        """Report the verdict: in the control block (``dakia-master reload`` and the admin
        API read it there whatever state_dir allows) and in ``state_dir/last_reload.json``;
        also in the state_dir the file names when that differs (a restart-only change)."""
        sdnotify.notify(f"READY=1\nSTATUS=serving config v{self.version}")
        result = {"master": self.pid, "at": time.time(), "ok": not outcome.errors,
                  "origin": origin,
                  "version": self.version, "errors": outcome.errors,
                  # Where this master runs, whatever the file says now (restart-only).
                  "pid_file": self.pid_file, "state_dir": self.state_dir,
                  "not_applied": [change.as_dict() for change in outcome.not_applied]}
        self.control.publish_reload(result)
        self.control.count_reload(not outcome.errors)
        directories = [self.state_dir]
        if outcome.file_state_dir not in (None, self.state_dir):
            directories.append(outcome.file_state_dir)
        for directory in directories:
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
                _write_json(os.path.join(directory, "last_reload.json"), result)
            except OSError as exc:
                log.error("reload: cannot write the result in %s: %s", directory, exc)

    def _reload(self, loaded: Loaded) -> _Reload:
        if loaded.config is None:
            log.error("reload refused, nothing changed:\n%s", "\n".join(loaded.errors))
            return _Reload(errors=loaded.errors)
        config = loaded.config
        for notice in loaded.notices:
            log.info("notice: %s", notice)
        loaded_settings = Settings.from_config(config)
        outcome = _Reload(file_state_dir=loaded_settings.state_dir)
        if (loaded_settings.etcd is None) != (self.settings.etcd is None):
            message = ("config_source: a running node does not move between its file and "
                       "a shared config; restart it (dakia-master upgrade) to do that")
            log.error("reload refused, nothing changed: %s", message)
            outcome.errors.append(message)
            return outcome
        restart_only = restart_only_changes(self.settings, loaded_settings)
        settings = keeping_running(config, loaded_settings, restart_only)
        outcome.not_applied.extend(restart_only)
        if settings.etcd != self.settings.etcd:
            # The follower and the revisions recorded follow one cluster and key for the
            # master's life: any change of config_source (credentials too) needs a restart,
            # and is reported as such.
            config["config_source"] = self.config["config_source"]
            settings = dataclasses.replace(settings, etcd=self.settings.etcd)
            outcome.not_applied.append(NotApplied("config_source", "(changed)", "(as at start)"))
        try:
            # Opened and closed here so that a log the workers could not open refuses the
            # reload instead of leaving every worker on the old version.
            _check_log_file(settings.access_log, "access_log")
            _check_log_file(settings.error_log, "error_log")
        except OSError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            outcome.errors.append(str(exc))
            return outcome
        try:
            # Written before anything is applied: a state_dir that cannot take the new
            # version (disk full, read-only, permission denied) refuses the reload whole.
            version = self.store.write(config, settings.keep_versions, source=loaded.source,
                                       meta=self._meta(settings, loaded.revision))
        except OSError as exc:
            message = (f"state_dir: cannot write the new version in {self.store.directory}: "
                       f"{exc.strerror or exc}")
            log.error("reload refused, the running version v%d is kept: %s", self.version,
                      message)
            outcome.errors.append(message)
            return outcome
        try:
            admin = self._admin_for(settings)
        except BindError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            self.store.discard(version)
            outcome.errors.append(f"admin.listen: cannot listen: {exc}")
            return outcome
        try:
            self._apply_listeners(specs_of(config))
        except BindError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            self.store.discard(version)
            if admin is not None and admin is not self.admin:
                admin.listener.close()
            outcome.errors.append(f"bind_addresses: cannot listen: {exc}")
            return outcome
        if admin is not self.admin:
            # Swapped at the next turn, once the answer to a change that moved the admin
            # listener (PUT over the admin API itself) has gone to the process that asked.
            self.admin_next = (admin,)
        outcome.not_applied.extend(self._apply_workers(settings))
        try:
            setup_logging(settings)
        except OSError as exc:
            log.error("error_log: cannot open %s: %s; logging where it did",
                      settings.error_log, exc.strerror or exc)
        self.config = config
        self.settings = settings
        self.version = version
        self.revision = loaded.revision
        self.control.publish_version(self.version)
        self._signal_workers(signal.SIGHUP)
        for change in outcome.not_applied:
            log.warning("reload: %s", change.line())
        log.info("reload: published config v%d%s", self.version,
                 "" if self.revision is None else f" (etcd revision {self.revision})")
        return outcome

    def _apply_workers(self, settings: Settings) -> list[NotApplied]:
        """Follow a changed ``workers`` as TTIN/TTOU would, unless ``start --workers``
        fixed the count; what could not be applied."""
        if self.workers_override is not None:
            if settings.workers == self.settings.workers:
                return []
            return [NotApplied("workers", settings.workers, self.slots,
                               f"start --workers {self.workers_override} fixes the count")]
        slots = _resolve_workers(settings.workers)
        if slots == self.slots:
            return []
        problem = self._resize(slots)
        if problem is not None:
            return [NotApplied("workers", settings.workers, self.slots, problem)]
        return []

    def _apply_listeners(self, specs: list[ListenerSpec]) -> None:
        """Bind added listeners, retire removed ones, follow gateway renames. All or nothing."""
        wanted = {spec_key(spec): spec for spec in specs}
        added: dict[tuple[str, str, int], Listener] = {}
        try:
            for key, spec in wanted.items():
                if key not in self.listeners.current:
                    added[key] = bind(spec, self.socket_count_for(self.slots))
        except BindError:
            for listener in added.values():
                listener.close()
            raise
        changed = bool(added)
        for key in list(self.listeners.current):
            if key not in wanted:
                self.listeners.retired.append(self.listeners.current.pop(key))
                changed = True
            elif self.listeners.current[key].spec != wanted[key]:
                self.listeners.current[key].spec = wanted[key]
                changed = True
        self.listeners.current.update(added)
        if changed:
            self.generation += 1
            log.info("listeners changed: now %s; rolling the workers",
                     ", ".join(l.spec.label for l in self.listeners.current.values()))

    def socket_count_for(self, slots: int) -> int:
        counts = [len(l.sockets) for l in self.listeners.current.values() if not l.shared]
        return max([slots, *counts])

    # -- binary upgrade ------------------------------------------------------------------
    def upgrade(self) -> None:
        if self.upgrade_child is not None:
            log.warning("USR2: an upgrade is already in progress (new master %d)",
                        self.upgrade_child)
            return
        oldbin = self.pid_file + ".oldbin"
        try:
            os.rename(self.pid_file, oldbin)
        except OSError as exc:
            log.error("USR2: cannot rename the pid file: %s", exc)
            return
        env = dict(os.environ)
        env[INHERIT_ENV] = inherit_value([*self.listeners.current.values(),
                                          *([self.admin.listener] if self.admin else [])])
        env["DAKIA_UPGRADE_FROM"] = str(self.pid)
        argv = [sys.executable, "-m", "dakia_prefork.cli", "start", "-c", self.config_path]
        if self.workers_override is not None:
            argv += ["--workers", str(self.workers_override)]
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(sys.executable, argv, env)
            finally:
                os._exit(127)
        self.upgrade_child = pid
        log.info("USR2: started new master %d; pid file moved to %s", pid, oldbin)

    def _upgrade_failed(self, status: int) -> None:
        log.error("the new master %d %s before taking over; this master keeps serving",
                  self.upgrade_child, _describe(status))
        self.upgrade_child = None
        oldbin = self.pid_file + ".oldbin"
        if pidfile.read(self.pid_file) is None:
            try:
                os.rename(oldbin, self.pid_file)
            except OSError as exc:
                log.error("cannot restore the pid file: %s", exc)

    # -- stop ----------------------------------------------------------------------------
    def stop(self, graceful: bool) -> None:
        if self._stopping == "fast" or (self._stopping and graceful):
            return
        self._stopping = "graceful" if graceful else "fast"
        if self.reload_job is not None:
            self.reload_job.kill()       # its verdict would come too late to matter
            self.reload_job = None
        for call in [*([self.job_call] if self.job_call else []), *self.admin_calls]:
            if call.get("op") == "follow":
                FollowerLink.drop(call)          # nobody waits for it; etcd still has it
                continue
            self._answer(call, {"unavailable": "the master is stopping; nothing changed"})
        self.job_call = None
        self.admin_calls.clear()
        if self.admin is not None and self.admin.pid is not None:
            self.spawner.kill(self.admin.pid, signal.SIGTERM)   # it finishes what it answers
        if self.notified_ready and pidfile.read(self.pid_file) == self.pid:
            # Not after a binary upgrade handed the service over: under systemd's
            # NotifyAccess=all, STOPPING=1 from the old master would stop the new one too.
            sdnotify.notify("STOPPING=1")
        if graceful:
            wait = self.settings.graceful_timeout + _STOP_GRACE_AFTER_TERM
            log.info("graceful stop: draining workers (up to %.0fs)", wait)
            self._signal_workers(signal.SIGQUIT)
        else:
            wait = _STOP_GRACE_AFTER_TERM
            log.info("fast stop")
            self._signal_workers(signal.SIGTERM)
        self._stop_deadline = self.clock() + wait

    def cleanup(self) -> None:
        self.checker.stop(self._stop_child, 2.0)
        self.acme.stop(self._stop_child, 2.0)
        self.follower.stop(self._stop_child, 2.0)
        if self.admin is not None:
            if self.admin.pid is not None:
                self._stop_child(self.admin.pid, 5.0)
                self.admin.pid = None
            self.admin.close_channel()
        # A new master (binary upgrade) serves the same unix socket paths: leave them.
        handed_over = (self.upgrade_child is not None
                       or pidfile.read(self.pid_file) not in (None, self.pid))
        for listener in [*self.listeners.current.values(), *self.listeners.retired]:
            listener.close(unlink=not handed_over)
        self.listeners = _Listeners()
        if self.admin is not None:
            self.admin.listener.close()
        if self.segments is not None:
            self.segments.unlink()
            self.segments = None
        pidfile.remove(self.pid_file, self.pid)
        pidfile.remove(self.pid_file + ".oldbin", self.pid)


def _load_and_check(path: str) -> Loaded:
    """What the loader child runs on HUP: ``check``'s load of the file and the master's
    start-time checks; the file's document is kept as the version's source."""
    try:
        source = load_source(path)
        config, notices = validate(source, base_dir=os.path.dirname(os.path.abspath(path)),
                                   environ=os.environ)
        errors = runtime_errors(config)
    except ConfigError as exc:
        return Loaded(errors=exc.errors)
    if errors:
        return Loaded(errors=errors)
    return Loaded(config=config, notices=notices, source=source)


def _candidate_loader(config_path: str, persist: bool) -> Callable[[str], Loaded]:
    """The loader of a document the admin process wrote to a file: validated as the config
    file would be (paths relative to its directory, ``${NAME}`` from the environment);
    with ``persist``, the document is also written beside the file, in the file's format,
    for the master to rename over it once published."""
    def load_candidate(path: str) -> Loaded:
        try:
            with open(path, "rb") as stream:
                raw = read_bounded("the document", stream)
            source = parse_document(raw, "the document", as_json=True)
            config, notices = validate(
                source, base_dir=os.path.dirname(os.path.abspath(config_path)),
                environ=os.environ)
            errors = runtime_errors(config)
        except ConfigError as exc:
            return Loaded(errors=exc.errors)
        except OSError as exc:
            return Loaded(errors=[f"the document cannot be read: {exc.strerror or exc}"])
        if errors:
            return Loaded(errors=errors)
        persisted = None
        if persist:
            try:
                persisted = _write_beside(config_path, render_document(
                    source, as_json=is_json_path(config_path)).encode())
            except OSError as exc:
                return Loaded(errors=[f"persist: cannot write beside {config_path}: "
                                      f"{exc.strerror or exc}"])
        return Loaded(config=config, notices=notices, source=source, persisted=persisted)
    return load_candidate


def _write_beside(path: str, data: bytes) -> str:
    """Write ``data`` to a new file in ``path``'s directory with ``path``'s mode (0600 when
    there is none), synced; its name, for an atomic rename over ``path``."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    return write_temporary(os.path.dirname(os.path.abspath(path)), data, mode, ".new")


def _source_of(path: str) -> dict[str, Any] | None:
    """The file's document at start, kept as the first version's source (None if the file
    changed into something unreadable since it was loaded: the version is still served)."""
    try:
        return load_source(path)
    except ConfigError:
        return None


def _admin_spec(settings: Settings) -> ListenerSpec | None:
    if settings.admin is None:
        return None
    host, port = settings.admin.address
    return ListenerSpec("(admin)", "tcp", host, port)


def _check_log_file(path: str, key: str) -> None:
    """Fail at start or reload, not in every worker, when a log file cannot be opened for
    appending; raises OSError whose message names the setting."""
    if path in ("stdout", "stderr", "off"):
        problem = detached_target_problem(key, path, detached())
        if problem is not None:
            raise OSError(problem)           # a daemon's stdio is /dev/null
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as exc:
        raise OSError(f"{key}: cannot open {path}: {exc.strerror or exc}") from None


def _resolve_workers(value: Any) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    return int(value)


def _write_json(path: str, value: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.rename(tmp, path)
