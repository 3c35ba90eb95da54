"""The admin process: the admin API's server on the listener the master bound.

One greenlet accepts, at most ``MAX_CONNECTIONS`` serve at once (the rest wait in the
listen backlog), each through :class:`AdminServer`. A watcher greenlet follows the control
block: when a new config version is published it re-reads the admin token (a rotated token
file takes effect on the next reload, as nginx re-reads its certificates), and it stops the
process when the master is gone. SIGTERM/SIGQUIT stop it gracefully.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool

from ..config import ConfigError
from ..config.model import AdminSettings, Settings
from ..config.source import parse_document
from ..config.store import ConfigStore
from ..files import remove_quietly
from ..logs import reopen_logs, setup_logging
from ..metrics.exposition import MetricsReader
from ..procs import alive, orphaned
from ..shm.control import ControlBlock
from .api import AdminApi, DocumentError
from .backend import MasterBackend, MasterChannel
from .shared import SharedBackend
from .server import MAX_CONNECTIONS, AdminServer
from .token import TokenError, read_token

log = logging.getLogger("dakia.admin")

_STOP_GRACE = 5.0
_WATCH_PERIOD = 0.5


def parse_body(body: bytes, as_json: bool) -> dict[str, Any]:
    """A request body to a config document, under the same bounds as a config file."""
    try:
        return parse_document(body, "the request body", as_json=as_json)
    except ConfigError as exc:
        raise DocumentError("; ".join(exc.errors)) from None


class AdminProcess:
    def __init__(self, listener: socket.socket, channel: socket.socket,
                 config: dict[str, Any], segments: Any, master: int) -> None:
        # Made cooperative: these sockets were created before gevent patched the module.
        self._listener = socket.socket(listener.family, listener.type,
                                       fileno=listener.detach())
        channel_sock = socket.socket(channel.family, channel.type, fileno=channel.detach())
        self._master = master
        self._stop = Event()
        settings = Settings.from_config(config)
        assert settings.admin is not None
        self._admin: AdminSettings = settings.admin
        self._control = ControlBlock(segments.control)
        self._store = ConfigStore(settings.state_dir)
        self._version = self._control.config_version
        args = (MasterChannel(channel_sock, self._stop.set), self._store, self._control,
                os.path.join(settings.state_dir, "admin"))
        timeout = 2 * settings.config_load.timeout + 10
        # On an etcd config_source changes go to etcd (admin/shared.py); the cluster and
        # key are fixed for the master's life, so for this process's too.
        backend = (MasterBackend(*args, answer_timeout=timeout) if settings.etcd is None
                   else SharedBackend(settings.etcd, *args, answer_timeout=timeout))
        self._backend = backend
        self._metrics = MetricsReader(segments)
        self._labels: tuple[int, dict[str, Any]] = (self._version, config)
        backend.metrics_source = self._render_metrics
        _remove_stale_candidates(os.path.join(settings.state_dir, "admin"))
        self._api = AdminApi(backend, read_token(self._admin.token_file), parse_body)
        self._server = AdminServer(self._api)

    def _render_metrics(self) -> bytes:
        """The exposition, labelled by the version the master publishes now."""
        version = self._control.config_version
        if version != self._labels[0]:
            try:
                self._labels = (version, self._store.read(version))
            except (OSError, ValueError) as exc:
                log.error("admin: cannot read v%d for the metrics' labels: %s", version, exc)
        return self._metrics.render(self._labels[1], self._store.etcd_revision(version))

    def serve(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
            gevent.signal_handler(sig, self._stop.set)
        gevent.signal_handler(signal.SIGUSR1, reopen_logs)
        reopen_logs()           # a USR1 that came before the handler was ignored
        pool = Pool(MAX_CONNECTIONS)
        acceptor = gevent.spawn(self._accept_loop, pool)
        watcher = gevent.spawn(self._watch)
        self._stop.wait()
        acceptor.kill()
        watcher.kill()
        self._listener.close()
        pool.join(timeout=_STOP_GRACE)
        pool.kill(block=True, timeout=1.0)
        return 0

    def _accept_loop(self, pool: Pool) -> None:
        while True:
            pool.wait_available()
            try:
                conn, peer = self._listener.accept()
            except OSError as exc:
                log.error("admin: accept failed: %s", exc)
                gevent.sleep(0.1)
                continue
            pool.spawn(self._server.serve_connection, conn, _describe_peer(peer))

    def _watch(self) -> None:
        while not self._stop.is_set():
            if orphaned(self._master):
                self._stop.set()
                return
            version = self._control.config_version
            if version != self._version:
                self._version = version
                self._follow(version)
            gevent.sleep(_WATCH_PERIOD)

    def _follow(self, version: int) -> None:
        try:
            settings = Settings.from_config(self._store.read(version))
        except (OSError, ValueError) as exc:
            log.error("admin: cannot read v%d: %s", version, exc)
            return
        try:
            setup_logging(settings)      # a reload's error_log and log_level, as the master
        except OSError as exc:
            log.error("admin: error_log: cannot open %s: %s", settings.error_log, exc)
        if settings.admin is None:
            return                       # the master stops this process
        try:
            self._api.set_token(read_token(settings.admin.token_file))
        except TokenError as exc:
            log.error("admin: the token of v%d cannot be read, the previous one is kept: %s",
                      version, exc)


def _remove_stale_candidates(directory: str) -> None:
    """Candidate documents a killed admin process left behind (one at most per call it was
    making): they hold configs, so they do not stay."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "candidate" or not parts[1].isdigit():
            continue
        if alive(int(parts[1])):
            continue                  # an admin process being replaced is still answering
        remove_quietly(os.path.join(directory, name))



def _describe_peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) or "-"
