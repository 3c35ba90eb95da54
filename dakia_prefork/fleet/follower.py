"""The config follower: one process per node with an etcd ``config_source``, forked and
supervised by the master like the ACME process.

Theory of operation
-------------------
The master never waits on the network, so the watch lives here, in a plain synchronous
process (``dakia config follower``). Its loop:

1. read the key (``range``); if its mod_revision differs from the last one handed over
   (at start: the revision of the version the master serves), hand the document over;
2. watch the key from the read's store revision + 1, handing over each change as it
   comes;
3. when the watch ends (nothing for :data:`IDLE` seconds, etcd closed it, or its start
   revision was compacted) go back to 1: a fresh read is always a full catch-up, which is
   what a compacted revision asks for;
4. when etcd cannot be reached, say so (log, state file), wait with exponential backoff
   and full jitter (so a fleet does not reconnect in lockstep after an outage) and go
   back to 1. The node keeps serving its current version all along: nothing here touches
   what the workers serve.

*Handing over* is the admin process's way: the document's bytes go to a file of ours
under ``state_dir/etcd`` (mode 0600) and its path, with the revision, goes to the master
over a socketpair as one line of JSON (admin/channel.py framing). The master loads the
file with the same bounded loader child as a HUP (config_load), validates it with the
local file, publishes it as a version that records the revision, or rejects it with its
errors (logged with the revision, shown in ``status``), and removes the file. A document
too big for a config is refused here already, without being written.

The follower's own state (following, unreachable since..., the key missing) is written to
``state_dir/etcd/follower.json`` for ``status`` to show; it is advisory, the versions are
the truth.

A second thread keeps this node's record in the fleet's registry (fleet/registry.py):
the version and revision its master serves, read from the control block and the version
store, so every node's admin API can list which node serves what.
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from ..admin.channel import encode
from ..config.bounds import MAX_DOCUMENT_BYTES
from ..config.model import EtcdSettings, Settings
from ..config.store import ConfigStore
from ..files import write_temporary
from ..logs import reopen_logs, setup_logging
from ..procs import die_with_parent, exit_with, reset_master_signals, set_title
from ..shm.control import ControlBlock
from .etcd import Compacted, Etcd, EtcdError, EtcdUnreachable
from .registry import Registrar, node_id
from .state import STATE_FILE, documents_dir

log = logging.getLogger("dakia.fleet")

IDLE = 30.0
"""A watch with no event for this long is re-opened (with a fresh read): a connection a
network fault left silent is noticed within this, and a read costs etcd little."""
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0


def backoff(failures: int, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures (>= 1): full jitter over an
    exponential ceiling."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
    return rng.uniform(ceiling / 2, ceiling)


class _Stopped(Exception):
    """SIGTERM: raised from the handler so that a blocking read ends at once."""


class Served:
    """What this node's master serves, as the registry records it: the control block's
    version, and that version's etcd revision and admin address from the version store
    (read again only when the version changes)."""

    def __init__(self, control: ControlBlock, state_dir: str, master_pid: int,
                 follower: Callable[[], str | None]) -> None:
        self._control = control
        self._store = ConfigStore(state_dir)
        self._master_pid = master_pid
        self._follower = follower
        self._host = socket.gethostname()
        self._version = -1
        self._revision: int | None = None
        self._admin: str | None = None

    def __call__(self) -> dict[str, Any]:
        version = self._control.config_version
        if version != self._version:
            self._revision = self._store.etcd_revision(version)
            try:
                admin = self._store.read(version).get("admin")
            except (OSError, ValueError):
                admin = None
            self._admin = str(admin["listen"]) if isinstance(admin, dict) else None
            self._version = version
        return {"host": self._host, "master_pid": self._master_pid, "version": version,
                "revision": self._revision, "follower": self._follower(),
                "admin": self._admin}


class Follower:
    def __init__(self, settings: EtcdSettings, state_dir: str, channel: socket.socket,
                 revision: int | None, served: Callable[[Follower], Served] | None = None,
                 master_pid: int | None = None) -> None:
        self.settings = settings
        self.etcd = Etcd(settings)
        self.directory = documents_dir(state_dir)
        self.channel = channel
        self.handed = revision or 0          # the last mod_revision the master was given
        self.state: dict[str, Any] = {}
        self.rng = random.Random()
        self.registrar: Registrar | None = None
        if served is not None and master_pid is not None:
            # Its own client: requests' sessions are not shared between threads.
            self.registrar = Registrar(Etcd(settings), settings, node_id(master_pid),
                                       served(self))

    def serve(self) -> int:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        log.info("config follower %d: following %s from revision %d", os.getpid(),
                 self.settings.describe(), self.handed)
        failures = 0
        stop = threading.Event()
        registering: threading.Thread | None = None
        if self.registrar is not None:
            registering = threading.Thread(target=self.registrar.run, args=(stop,),
                                           name="registry", daemon=True)
            registering.start()
        try:
            while True:
                try:
                    self._follow_once()
                    failures = 0
                except Compacted as exc:
                    log.warning("config follower: %s; reading the key again", exc)
                except (EtcdUnreachable, EtcdError) as exc:
                    failures += 1
                    delay = backoff(failures, self.rng)
                    unreachable = isinstance(exc, EtcdUnreachable)
                    self._set_state("unreachable" if unreachable else "error", str(exc))
                    (log.warning if failures > 1 else log.error)(
                        "config follower: %s: %s; the node keeps serving its version, "
                        "retrying in %.1fs", "etcd unreachable" if unreachable else "etcd",
                        exc, delay)
                    time.sleep(delay)
        except _Stopped:
            return 0
        except BrokenPipeError:
            return 0                        # the master is gone or stopping
        finally:
            stop.set()
            if registering is not None:     # it leaves the registry (revokes its lease)
                registering.join(self.settings.timeout * len(self.settings.endpoints) + 1)
            self.etcd.close()

    def _follow_once(self) -> None:
        entry = self.etcd.get()
        if entry.value is None:
            self._set_state("missing", f"the key {self.settings.key} does not exist")
            log.error("config follower: %s does not exist in etcd; the node keeps serving "
                      "its version", self.settings.key)
        else:
            self._set_state("following")
            self._hand_over(entry.value, entry.mod_revision)
        for event in self.etcd.watch(entry.revision + 1, IDLE):
            if event.value is None:
                self._set_state("missing", f"the key {self.settings.key} was deleted at "
                                           f"revision {event.mod_revision}")
                log.error("config follower: %s was deleted (revision %d); the node keeps "
                          "serving its version", self.settings.key, event.mod_revision)
                continue
            self._set_state("following")
            self._hand_over(event.value, event.mod_revision)

    def _hand_over(self, value: bytes, revision: int) -> None:
        if revision == self.handed:
            return
        message: dict[str, Any] = {"op": "document", "revision": revision}
        if len(value) > MAX_DOCUMENT_BYTES:
            message["error"] = (f"the document at revision {revision} has {len(value)} "
                                f"bytes, over the {MAX_DOCUMENT_BYTES} a config may have")
        else:
            message["path"] = write_temporary(self.directory, value, 0o600,
                                              f".r{revision}.json")
        self.channel.sendall(encode(message))
        self.handed = revision
        self.state["revision"] = revision
        self._write_state()

    def _set_state(self, state: str, error: str | None = None) -> None:
        if self.state.get("state") == state and self.state.get("error") == error:
            return
        if state == "following" and self.state.get("state") not in (None, "following"):
            log.info("config follower: etcd reachable again (%s)", self.etcd.endpoint)
        self.state = {"pid": os.getpid(), "state": state, "since": time.time(),
                      "endpoint": self.etcd.endpoint, "key": self.settings.key,
                      "error": error, "revision": self.handed}
        self._write_state()

    def _write_state(self) -> None:
        try:
            path = write_temporary(self.directory, json.dumps(self.state).encode(), 0o600)
            os.replace(path, os.path.join(self.directory, STATE_FILE))
        except OSError as exc:
            log.error("config follower: cannot write its state in %s: %s", self.directory,
                      exc.strerror or exc)


def run_follower(channel: socket.socket, config: dict[str, Any], revision: int | None,
                 segments: Any, master_pid: int) -> NoReturn:
    """Follow until told to stop, then ``os._exit``: never returns into the master's code."""
    reset_master_signals(ignore_usr1=True)
    set_title("config follower")
    die_with_parent(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped()

    def body() -> int:
        settings = Settings.from_config(config)
        assert settings.etcd is not None
        try:
            setup_logging(settings)
        except OSError:
            pass                             # logging where it did; the master reported it
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGQUIT, stop)
        signal.signal(signal.SIGUSR1, lambda signum, frame: reopen_logs())
        channel.setblocking(True)
        control = ControlBlock(segments.control)

        def served(follower: Follower) -> Served:
            return Served(control, settings.state_dir, master_pid,
                          lambda: follower.state.get("state"))
        return Follower(settings.etcd, settings.state_dir, channel, revision, served,
                        master_pid).serve()
    exit_with(body)
