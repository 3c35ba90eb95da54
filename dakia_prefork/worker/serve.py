"""The gevent side of a worker: accept loops, connection greenlets, heartbeat, reload, drain.

Imported only after monkey-patching (see ``main.py``).
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, cast

import gevent
import gevent.event

from ..config.model import Settings
from ..config.store import ConfigStore
from ..http.connection import SWEEP_SECONDS, DownstreamConnection, expire_waits
from ..http.fetch import Fetcher, connect_node
from ..http.upstream import Resolver, UpstreamPool
from ..interceptors.resources import Resources
from ..logs import reopen_logs, setup_logging
from ..procs import orphaned
from ..shm.control import STATE_DRAINING, STATE_READY, ControlBlock
from ..shm.buckets import BucketTable
from ..shm.counters import CounterTable
from ..shm.instance import InstanceSegments
from ..shm.nodestats import NodeStats
from ..tls.handshake import HandshakeFailed, accept_tls
from .context import ListenerInfo, WorkerContext
from .cover import Cover
from .runtime import Runtime

if TYPE_CHECKING:
    from ..metrics.exposition import MetricsReader

log = logging.getLogger("dakia.worker")

HEARTBEAT_SECONDS = 1.0
_LOG_FLUSH_SECONDS = 0.2
_DRAIN_IDLE_CLOSE = 1.0
# How long the tunnels closed at graceful_timeout get to finish (their pumps are killed at
# once; this is for their access-log lines).
_TUNNEL_CLOSE_SECONDS = 1.0
# The longest a connection answered with an error is read from before it is closed.
_LINGER_SECONDS = 1.0


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
                 config: dict[str, Any], version: int, segments: InstanceSegments,
                 spare: list[tuple[int, Any, ListenerInfo]] | None = None) -> None:
        self.slot = slot
        self.record = record
        self.pid = os.getpid()
        self.control = ControlBlock(segments.control)
        # The master that forked us: once it is gone we drain and exit (worker/main.py
        # asks for a death signal too; this is the check for when that was missed).
        self.master_pid = self.control.master_pid
        self.counters = CounterTable(segments.counters, pause=_yield)
        self.node_stats = NodeStats(segments.nodes, record=record, pause=_yield)
        self.buckets = BucketTable(segments.buckets, pause=_yield)
        # This worker's metrics region: record-numbered, so its replacement counts on.
        self.metrics = segments.metric_regions().writer(record)
        self.segments = segments
        # What interceptors may use: only a worker has these (interceptors/resources.py).
        # try_file's fetches read with the engine of the version served at that moment;
        # the metrics interceptor renders with the labels of the version served.
        self.resources = Resources(buckets=self.buckets,
                                   fetch=Fetcher(lambda: self.ctx.engine),
                                   connect=connect_node, metrics=self._render_metrics)
        settings = Settings.from_config(config)
        # state_dir is restart-only (config/model.py): the store stays where it is.
        self.store = ConfigStore(settings.state_dir)
        self.listeners = [(socket.socket(s.family, s.type, fileno=s.detach()), info)
                          for s, info in listeners]
        self.cover = Cover(self.control,
                           [(other, socket.socket(s.family, s.type, fileno=s.detach()), info)
                            for other, s, info in spare or []], self._accept_loop)
        runtime = self._build(version, settings, None)
        self.ctx = WorkerContext(
            runtime=runtime,
            pool=UpstreamPool(settings.upstream_keepalive_pool_size),
            # Host names of upstream nodes, cached for the worker's life (across reloads).
            resolver=Resolver(spawn=gevent.spawn))
        self.connections: set[DownstreamConnection] = set()
        # Idle keep-alive connections waiting outside a greenlet, with their watchers.
        self.parked: dict[DownstreamConnection, Any] = {}
        # Open connections, bounded by limits.max_connections of the current version.
        self.active = 0
        self._room = gevent.event.Event()
        self._room.set()
        self.stopped = gevent.event.Event()
        self.code = 0
        self._metrics_reader: MetricsReader | None = None
        self._https_infos: dict[ListenerInfo, ListenerInfo] = {}

    def _build(self, version: int, settings: Settings, current: Runtime | None) -> Runtime:
        """The runtime of ``settings``; it keeps ``current``'s access log when the new
        version names the same one (same file, same format: buffered lines stay in order)."""
        access_log = None
        if current is not None and current.access_log.matches(settings):
            access_log = current.access_log
        return Runtime(version, settings, self.counters, self.resources, self.node_stats,
                       access_log=access_log, metrics=self.metrics)

    def _render_metrics(self) -> bytes:
        """The exposition of every worker's metrics (the ``metrics`` interceptor's);
        prometheus-client is imported on the first scrape only."""
        from ..metrics.exposition import MetricsReader
        reader = self._metrics_reader
        if reader is None:
            reader = self._metrics_reader = MetricsReader(self.segments)
        return reader.render({"gateways": [g.spec for g in self.ctx.runtime.settings.gateways]})

    # -- lifecycle -----------------------------------------------------------------------
    def serve(self) -> int:
        gevent.signal_handler(signal.SIGQUIT, self._on_quit)
        gevent.signal_handler(signal.SIGTERM, self._on_term)
        gevent.signal_handler(signal.SIGINT, self._on_term)
        gevent.signal_handler(signal.SIGHUP, self._check_version)
        gevent.signal_handler(signal.SIGUSR1, self._reopen_logs)
        # A USR1 that came during boot was ignored (worker/main.py): the files may have been
        # rotated since this worker opened them, so reopen them once now.
        self._reopen_logs()
        self._acceptors = [gevent.spawn(self._accept_loop, lsock, info)
                           for lsock, info in self.listeners]
        gevent.spawn(self._heartbeat_loop)
        gevent.spawn(self._flush_loop)
        gevent.spawn(self._deadline_loop)
        self.cover.start()
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
        self.cover.stop()
        deadline = time.monotonic() + ctx.runtime.settings.graceful_timeout
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
        if ctx.tunnels:
            # WebSockets ran as long as graceful_timeout allowed: end them here rather than
            # by exiting, so that each writes its access-log line (status 101, bytes).
            log.warning("worker %d: graceful_timeout reached: closing %d WebSocket(s)",
                        self.pid, len(ctx.tunnels))
            closing: set[DownstreamConnection] = set()
            for tunnel in list(ctx.tunnels):
                tunnel.close()
                closing.add(tunnel.conn)
            # Their connections leave ``connections`` once the line is written.
            until = time.monotonic() + _TUNNEL_CLOSE_SECONDS
            while not closing.isdisjoint(self.connections) and time.monotonic() < until:
                gevent.sleep(0.01)
        if self.connections:
            log.warning("worker %d: graceful_timeout reached with %d connection(s) open",
                        self.pid, len(self.connections))
        self.stopped.set()

    # -- accepting -----------------------------------------------------------------------
    def _accept_loop(self, lsock: socket.socket, info: ListenerInfo) -> None:
        tcp = lsock.family in (socket.AF_INET, socket.AF_INET6)
        room = self._room
        ctx = self.ctx
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
                if ctx.draining:
                    return
                raise
            if tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # limits.max_connections of the version current now (a reload may have lowered
            # it while we waited in accept): when full, this connection waits, unanswered,
            # until one closes or a reload raises the limit; nothing more is accepted.
            try:
                while self.active >= ctx.runtime.limits.max_connections:
                    room.clear()
                    room.wait()
            except BaseException:           # killed by a drain while waiting
                sock.close()
                raise
            self.active += 1
            gevent.spawn(self._serve_connection, sock, peer_address(addr), info)

    def _serve_connection(self, sock: socket.socket, peer: str, info: ListenerInfo) -> None:
        subject = ""
        try:
            # TLS or not is the current version's word (a reload may turn it on or off on
            # a listener that stays bound); the handshake runs here, in this connection's
            # own greenlet, so a slow one holds nothing but itself (tls/handshake.py).
            gateway = self.ctx.runtime.gateways.get(info.gateway)
            tls = None if gateway is None else gateway.tls.get(info.label)
            if tls is not None:
                try:
                    sock, subject = accept_tls(sock, tls,
                                               self.ctx.limits.tls_handshake_timeout, peer)
                except HandshakeFailed as failed:
                    self._freed()           # accept_tls closed the socket
                    assert gateway is not None
                    counter = gateway.tls_metrics.get(info.label)
                    if counter is not None:
                        counter.handshake_failed(failed.reason)
                    return
                info = self._https(info)
            conn = DownstreamConnection(self.ctx, sock, peer, info)
            conn.client_subject = subject
        except BaseException:
            self._closed(sock)
            raise
        self.connections.add(conn)
        self._run_connection(conn)

    def _run_connection(self, conn: DownstreamConnection) -> None:
        """Run ``conn`` (anew, after it was parked) until it ends or is parked again."""
        sock = cast(socket.socket, conn.sock)   # a worker's streams are sockets
        try:
            conn.run()
            if conn.parked:
                self._park(conn)
                return
            if conn.linger:
                _linger_close(sock)
        except Exception:  # noqa: BLE001 - one bad connection must never take the worker down
            log.exception("connection from %s failed", conn.peer or "unix socket")
        self.connections.discard(conn)
        self._closed(sock)

    def _https(self, info: ListenerInfo) -> ListenerInfo:
        """``info`` as a TLS connection's: scheme https (X-Forwarded-Proto, filters)."""
        https = self._https_infos.get(info)
        if https is None:
            https = self._https_infos[info] = dataclasses.replace(info, scheme="https")
        return https

    def _closed(self, sock: socket.socket) -> None:
        """Close a client socket and give its place back to the acceptors."""
        try:
            sock.close()
        except OSError:
            pass
        self._freed()

    def _freed(self) -> None:
        """A connection's place is free: give it back to the acceptors."""
        self.active -= 1
        if not self._room.is_set():
            self._room.set()

    # -- parked connections (http/connection.py: idle keep-alive without a greenlet) ------
    def _park(self, conn: DownstreamConnection) -> None:
        sock = cast(socket.socket, conn.sock)     # a worker's streams are sockets
        watcher = gevent.get_hub().loop.io(sock.fileno(), 1)     # 1: readable
        self.parked[conn] = watcher
        watcher.start(self._unpark, conn)

    def _unpark(self, conn: DownstreamConnection) -> None:
        """The client sent something, or closed: serve it in a new greenlet (runs in the hub)."""
        watcher = self.parked.pop(conn, None)
        if watcher is None:
            return
        watcher.stop()
        watcher.close()
        gevent.spawn(self._run_connection, conn)

    def _close_parked(self, now: float) -> int:
        """Close the parked connections whose keep-alive timeout has passed; how many."""
        closed = 0
        for conn in list(self.parked):
            if now - conn.idle_since >= conn.ctx.limits.keepalive_timeout:
                watcher = self.parked.pop(conn)
                watcher.stop()
                watcher.close()
                self.connections.discard(conn)
                self._closed(cast(socket.socket, conn.sock))
                closed += 1
        return closed

    # -- periodic work -------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while True:
            if orphaned(self.master_pid) and not self.ctx.draining:
                log.warning("worker %d: master %d is gone; draining", self.pid,
                            self.master_pid)
                self._on_quit()
            self.control.beat(self.record, self.ctx.requests)
            self.control.set_connections(self.record, self.active)
            self.control.set_websockets(self.record, len(self.ctx.tunnels))
            self._check_version()
            self._follow_acme_certificates()
            self.ctx.pool.sweep()        # upstream connections idle past timeouts.idle
            gevent.sleep(HEARTBEAT_SECONDS)

    def _deadline_loop(self) -> None:
        """Time out the waits past their deadline: the request path's timeouts
        (http/connection.py explains why they are not socket timeouts)."""
        while True:
            gevent.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            _expired, parking = expire_waits(self.connections, now)
            if parking:
                log.debug("worker %d: parking %d idle keep-alive connection(s), %d parked "
                          "already", self.pid, parking, len(self.parked))
            if self.parked:
                self._close_parked(now)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(_LOG_FLUSH_SECONDS)
            self.ctx.access_log.flush()

    def _follow_acme_certificates(self) -> None:
        """Serve a renewed ACME certificate to new connections (tls/acme_listener.py)."""
        for gateway in self.ctx.runtime.gateways.values():
            for label, source in gateway.acme_tls.items():
                if source.stale():
                    gateway.tls[label] = source.build()
                    log.info("worker %d: listener %s now serves %s", self.pid, label,
                             "a self-signed placeholder" if source.placeholder
                             else "the ACME certificate " + source.bundle)

    def _check_version(self) -> None:
        """Swap to the published config version if it is newer than ours."""
        published = self.control.config_version
        current = self.ctx.runtime
        if published <= current.version:
            return
        try:
            settings = Settings.from_config(self.store.read(published))
            runtime = self._build(published, settings, current)
        except Exception as exc:  # noqa: BLE001 - keep serving the version we have
            log.error("worker %d: cannot load config v%d, keeping v%d: %s", self.pid,
                      published, current.version, exc)
            return
        missing = {info.gateway for _sock, info in self.listeners} - set(runtime.gateways)
        if missing:
            # Our listeners moved to other gateways: the master is rolling us, and our
            # replacement serves the new version. Keep ours until we are told to drain.
            if runtime.access_log is not current.access_log:
                runtime.access_log.close()
            return
        self.ctx.runtime = runtime          # one assignment: requests in flight keep theirs
        self._apply(current, runtime)
        self.control.set_config_version(self.record, published)
        log.info("worker %d now serves config v%d", self.pid, published)

    def _apply(self, old: Runtime, new: Runtime) -> None:
        """What a swap changes beyond the runtime itself: the worker's own resources."""
        if new.access_log is not old.access_log:
            old.access_log.close()          # flushed first: its last lines are kept
        self.ctx.pool.max_idle = new.settings.upstream_keepalive_pool_size
        if new.limits.max_connections > old.limits.max_connections:
            self._room.set()                # acceptors waiting for room re-check the limit
        try:
            setup_logging(new.settings)
        except OSError as exc:
            log.error("worker %d: error_log: cannot open %s: %s; logging where it did",
                      self.pid, new.settings.error_log, exc.strerror or exc)

def _has_pending_bytes(sock: socket.socket) -> bool:
    pending = getattr(sock, "pending", None)
    if pending is not None:
        # A TLS socket refuses recv flags: what it decrypted already counts, and so do
        # encrypted bytes still in the kernel, peeked at through a duplicate descriptor.
        if pending():
            return True
        sock = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
        try:
            return _has_pending_bytes(sock)
        finally:
            sock.close()
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
    response before the client reads it). Bounded in bytes and in time as a whole: a client
    that drips (answered 408 for it) must not keep its slot by dripping on here."""
    try:
        sock.shutdown(socket.SHUT_WR)
        drained = 0
        until = time.monotonic() + _LINGER_SECONDS
        while drained < 262144:
            left = until - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass
