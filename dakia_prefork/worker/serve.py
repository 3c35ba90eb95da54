"""The gevent side of a worker: accept loops, connection greenlets, heartbeat, reload, drain.

Imported only after monkey-patching (see ``main.py``).
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from typing import Any, cast

import gevent
import gevent.event
import gevent.pool

from ..config.store import ConfigStore
from ..http.engines import select_engine
from ..http.connection import DownstreamConnection
from ..http.fetch import Fetcher, connect_node
from ..http.upstream import Resolver, UpstreamPool
from ..interceptors.resources import Resources
from ..logs import reopen_logs
from ..shm.control import STATE_DRAINING, STATE_READY, ControlBlock
from ..shm.buckets import BucketTable
from ..shm.counters import CounterTable
from ..shm.instance import InstanceSegments
from ..shm.nodestats import NodeStats
from .accesslog import AccessLog
from .context import Limits, ListenerInfo, WorkerContext
from .runtime import Runtime

log = logging.getLogger("dakia.worker")

HEARTBEAT_SECONDS = 1.0
_LOG_FLUSH_SECONDS = 0.2
_DRAIN_IDLE_CLOSE = 1.0


def _yield() -> None:
    """How a worker waits for a shared-memory lock held by another process: let the other
    greenlets run, never block the hub."""
    gevent.sleep(0)


def peer_address(addr: Any) -> str:
    """The client IP as filters and X-Forwarded-For show it; "" for unix sockets."""
    if isinstance(addr, tuple):
        host = addr[0]
        return host[7:] if host.startswith("::ffff:") else host
    return ""


class Worker:
    def __init__(self, slot: int, record: int, listeners: list[tuple[Any, ListenerInfo]],
                 config: dict[str, Any], version: int, segments: InstanceSegments) -> None:
        self.slot = slot
        self.record = record
        self.pid = os.getpid()
        self.control = ControlBlock(segments.control)
        self.counters = CounterTable(segments.counters, pause=_yield)
        self.node_stats = NodeStats(segments.nodes, record=record, pause=_yield)
        self.buckets = BucketTable(segments.buckets, pause=_yield)
        engine = select_engine(config.get("http_parser", "auto"))
        # What interceptors may use: only a worker has these (interceptors/resources.py).
        self.resources = Resources(buckets=self.buckets, fetch=Fetcher(engine),
                                   connect=connect_node)
        self.store = ConfigStore(config["state_dir"])
        self.graceful_timeout = float(config.get("graceful_timeout", 30))
        self.listeners = [(socket.socket(s.family, s.type, fileno=s.detach()), info)
                          for s, info in listeners]
        runtime = Runtime(version, config, self.counters, self.resources, self.node_stats)
        self.ctx = WorkerContext(
            engine=engine,
            limits=Limits.from_config(config),
            runtime=runtime,
            pool=UpstreamPool(int(config["upstream_keepalive_pool_size"])),
            access_log=AccessLog(config.get("access_log", "stdout"),
                                 config.get("access_log_format", "combined")),
            # Host names of upstream nodes, cached for the worker's life (across reloads).
            resolver=Resolver(spawn=gevent.spawn))
        self.connections: set[DownstreamConnection] = set()
        self.pool = gevent.pool.Pool(self.ctx.limits.max_connections)
        self.stopped = gevent.event.Event()
        self.code = 0

    # -- lifecycle -----------------------------------------------------------------------
    def serve(self) -> int:
        gevent.signal_handler(signal.SIGQUIT, self._on_quit)
        gevent.signal_handler(signal.SIGTERM, self._on_term)
        gevent.signal_handler(signal.SIGINT, self._on_term)
        gevent.signal_handler(signal.SIGHUP, self._check_version)
        gevent.signal_handler(signal.SIGUSR1, self._reopen_logs)
        self._acceptors = [gevent.spawn(self._accept_loop, lsock, info)
                           for lsock, info in self.listeners]
        gevent.spawn(self._heartbeat_loop)
        gevent.spawn(self._flush_loop)
        self.control.set_state(self.record, STATE_READY)
        log.debug("worker %d ready in slot %d", self.pid, self.slot)
        self.stopped.wait()
        self.ctx.access_log.flush()
        self.ctx.pool.close_all()
        return self.code

    def _reopen_logs(self) -> None:
        self.ctx.access_log.flush()
        self.ctx.access_log.reopen()
        reopen_logs()

    def _on_term(self) -> None:
        self.ctx.access_log.flush()
        os._exit(0)

    def _on_quit(self) -> None:
        if self.ctx.draining:
            return
        gevent.spawn(self._drain)

    def _drain(self) -> None:
        """Stop accepting, let requests in flight finish, close idle keep-alive connections."""
        ctx = self.ctx
        ctx.draining = True
        self.control.set_state(self.record, STATE_DRAINING)
        for acceptor in self._acceptors:
            acceptor.kill(block=False)
        for lsock, _info in self.listeners:
            # Only our copy: the master keeps the socket open, queued connections survive.
            lsock.close()
        deadline = time.monotonic() + self.graceful_timeout
        # A keep-alive client that is still sending gets ``Connection: close`` on its next
        # response and leaves on its own. Only connections seen idle (no new request) for
        # _DRAIN_IDLE_CLOSE are closed here: closing one the instant its response went out
        # would race the client's next request, which is already on the wire.
        idle_seen: dict[DownstreamConnection, tuple[int, float]] = {}
        while self.connections and time.monotonic() < deadline:
            now = time.monotonic()
            for conn in list(self.connections):
                if not conn.idle:
                    idle_seen.pop(conn, None)
                    continue
                requests, since = idle_seen.setdefault(conn, (conn.requests, now))
                if requests != conn.requests:
                    idle_seen[conn] = (conn.requests, now)
                elif now - since >= _DRAIN_IDLE_CLOSE and not _has_pending_bytes(
                        cast(socket.socket, conn.sock)):  # a worker's streams are sockets
                    try:
                        conn.sock.shutdown(socket.SHUT_RD)
                    except OSError:
                        pass
            gevent.sleep(0.05)
        if self.connections:
            log.warning("worker %d: graceful_timeout reached with %d connection(s) open",
                        self.pid, len(self.connections))
        self.stopped.set()

    # -- accepting -----------------------------------------------------------------------
    def _accept_loop(self, lsock: socket.socket, info: ListenerInfo) -> None:
        tcp = lsock.family in (socket.AF_INET, socket.AF_INET6)
        spawn = self.pool.spawn
        while True:
            try:
                sock, addr = lsock.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept: %s; pausing accepts for 100 ms", exc)
                    gevent.sleep(0.1)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EAGAIN, errno.EPROTO):
                    continue
                if self.ctx.draining:
                    return
                raise
            if tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            spawn(self._serve_connection, sock, peer_address(addr), info)

    def _serve_connection(self, sock: socket.socket, peer: str, info: ListenerInfo) -> None:
        conn = DownstreamConnection(self.ctx, sock, peer, info)
        self.connections.add(conn)
        try:
            conn.run()
            if conn.linger:
                _linger_close(sock)
        except Exception:  # noqa: BLE001 - one bad connection must never take the worker down
            log.exception("connection from %s failed", peer or "unix socket")
        finally:
            self.connections.discard(conn)
            try:
                sock.close()
            except OSError:
                pass

    # -- periodic work -------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while True:
            self.control.beat(self.record, self.ctx.requests)
            self._check_version()
            self.ctx.pool.sweep()        # upstream connections idle past timeouts.idle
            gevent.sleep(HEARTBEAT_SECONDS)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(_LOG_FLUSH_SECONDS)
            self.ctx.access_log.flush()

    def _check_version(self) -> None:
        """Swap to the published config version if it is newer than ours."""
        published = self.control.config_version
        if published <= self.ctx.runtime.version:
            return
        try:
            config = self.store.read(published)
            runtime = Runtime(published, config, self.counters, self.resources,
                              self.node_stats)
        except Exception as exc:  # noqa: BLE001 - keep serving the version we have
            log.error("worker %d: cannot load config v%d, keeping v%d: %s", self.pid,
                      published, self.ctx.runtime.version, exc)
            return
        missing = {info.gateway for _sock, info in self.listeners} - set(runtime.gateways)
        if missing:
            # Our listeners moved to other gateways: the master is rolling us, and our
            # replacement serves the new version. Keep ours until we are told to drain.
            return
        self.ctx.runtime = runtime          # one assignment: requests in flight keep theirs
        self.control.set_config_version(self.record, published)
        log.info("worker %d now serves config v%d", self.pid, published)


def _has_pending_bytes(sock: socket.socket) -> bool:
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def _linger_close(sock: socket.socket) -> None:
    """Half-close and read what the client is still sending, so our answer is not lost to a
    reset (closing with unread bytes makes the kernel send RST, which can discard the
    response before the client reads it)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        drained = 0
        while drained < 262144:
            data = sock.recv(65536)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass
