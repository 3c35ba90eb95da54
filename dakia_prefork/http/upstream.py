"""Upstream nodes, how to reach them (names, TLS), and the per-worker pool of connections.

Theory of operation
-------------------
A ``Node`` is one entry of an upstream's ``upstream_nodes`` in one config version: its
address (``("tcp", host, port)`` or ``("unix", path, 0)``), weight, TLS settings and the
key of its connections in the pool.

Reaching a node (``open_connection``):

- an IP literal or a unix path is connected to directly (no getaddrinfo: gevent would run
  it in its thread pool on every new connection);
- a host name is looked up by the worker's ``Resolver``: the first connection to a name
  waits for the lookup (that greenlet only: after monkey-patching, ``getaddrinfo`` runs on
  gevent's resolver and the hub keeps serving); afterwards the addresses are cached for
  the upstream's ``resolve_ttl`` and, once stale, refreshed by a background greenlet while
  connections keep using the addresses already known. Every address of the name is used:
  new connections start at the next address in turn, and a connection that fails on one
  address tries the next within the connect timeout. A name is one node for balancing and
  health: its addresses share its state, its weight and its checks;
- ``tls: true`` wraps the connection with the node's ``UpstreamTLS`` and completes the
  handshake within what is left of the connect timeout. Certificates are verified by
  default (system CAs, or ``ca_file``), against ``sni`` or else the host of the address;
  ``tls_verify: false`` turns both checks off. ``client_cert``/``client_key`` are
  presented when the node asks for one (mTLS). The TLS session of the last connection is
  offered again, so new connections to a node resume instead of a full handshake.

The pool is keyed by what makes two connections interchangeable (address, and for TLS the
name and certificates), not by config version, so a reload that keeps a node keeps its warm
connections. Idle connections are reused last-in first-out (the warmest socket, the one
least likely to have been closed by the upstream's own idle timer) and checked before
reuse: a socket that is readable while idle has been closed or has sent garbage, and is
dropped. Connections idle for longer than their upstream's ``timeouts.idle`` are never
reused, and ``sweep`` closes them so they do not hold descriptors.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Hashable

if TYPE_CHECKING:
    from ..metrics.recorder import NodeMetrics

Address = tuple[str, str, int]      # ("tcp", host, port) or ("unix", path, 0)
SockAddr = tuple[int, Any]          # (family, sockaddr) as getaddrinfo gives them

log = logging.getLogger("dakia.upstream")

DEFAULT_RESOLVE_TTL = 30.0


class UpstreamTLS:
    """How to speak TLS to one node: the context, the name to send and verify, the key of
    its connections in the pool, and the last session (offered for resumption)."""

    __slots__ = ("context", "server_hostname", "pool_key", "session")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None,
                 pool_key: Hashable) -> None:
        self.context = context
        self.server_hostname = server_hostname
        self.pool_key = pool_key
        self.session: Any = None

    def wrap(self, sock: socket.socket, timeout: float) -> socket.socket:
        """The TLS connection over ``sock``, handshake done; raises ssl.SSLError/OSError."""
        session = self.session
        try:
            tls = self.context.wrap_socket(sock, server_hostname=self.server_hostname,
                                           do_handshake_on_connect=False, session=session)
        except ValueError:          # a session of another context: start afresh
            self.session = None
            tls = self.context.wrap_socket(sock, server_hostname=self.server_hostname,
                                           do_handshake_on_connect=False)
        tls.settimeout(timeout)
        tls.do_handshake()
        return tls

    def remember(self, sock: Any) -> None:
        """Keep the session of a connection that completed an exchange (TLS 1.3 tickets
        arrive after the handshake, so this is the moment one is known)."""
        try:
            session = sock.session
        except (AttributeError, ValueError):
            return
        if session is not None and session.has_ticket:
            self.session = session


_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}


def _mtime(path: str | None) -> float:
    if path is None:
        return 0.0
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


def client_context(verify: bool, ca_file: str | None, client_cert: str | None,
                   client_key: str | None) -> ssl.SSLContext:
    """The client-side context for these settings, shared by the nodes that use the same
    ones and rebuilt when one of the files changes (a reload then picks renewed certs)."""
    key = (verify, ca_file, client_cert, client_key, _mtime(ca_file), _mtime(client_cert),
           _mtime(client_key))
    context = _CONTEXTS.get(key)
    if context is not None:
        return context
    if verify:
        # The system's CAs unless a bundle is named; hostname checks on. (Like every
        # create_default_context, it honours SSLKEYLOGFILE.)
        context = ssl.create_default_context(cafile=ca_file)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    if len(_CONTEXTS) >= 256:
        _CONTEXTS.clear()
    _CONTEXTS[key] = context
    return context


class Node:
    """One upstream node of one config version."""

    __slots__ = ("address", "label", "weight", "host_header", "tls", "pool_key", "named",
                 "resolve_ttl", "metrics")

    def __init__(self, address: Address, weight: int = 1, tls: UpstreamTLS | None = None,
                 resolve_ttl: float = DEFAULT_RESOLVE_TTL) -> None:
        self.address = address
        kind, host, port = address
        if kind == "unix":
            self.label = "unix:" + host
        elif ":" in host:
            self.label = f"[{host}]:{port}"
        else:
            self.label = f"{host}:{port}"
        self.weight = weight
        # The Host sent upstream when the client sent none (HTTP/1.0): the node itself.
        self.host_header = b"localhost" if kind == "unix" else self.label.encode("ascii", "replace")
        self.tls = tls
        self.pool_key: Hashable = address if tls is None else tls.pool_key
        self.named = kind == "tcp" and _literal_family(host) is None
        self.resolve_ttl = resolve_ttl
        # Its counters in this worker's metrics region (worker/runtime.py sets them; None
        # with metrics off).
        self.metrics: NodeMetrics | None = None


def tls_for(address: Address, sni: str | None, verify: bool, ca_file: str | None,
            client_cert: str | None, client_key: str | None) -> UpstreamTLS:
    """The TLS settings of a node with ``tls: true`` (raises OSError/ssl.SSLError when a
    file cannot be loaded; the config check has tried the same before)."""
    kind, host, _port = address
    server_hostname = sni if sni is not None else (host if kind == "tcp" else None)
    context = client_context(verify, ca_file, client_cert, client_key)
    return UpstreamTLS(context, server_hostname,
                       (*address, "tls", server_hostname, verify, ca_file, client_cert,
                        client_key))


class UpstreamConnection:
    __slots__ = ("sock", "key", "idle_since", "idle_timeout", "tls", "timeout")

    def __init__(self, sock: socket.socket, key: Hashable,
                 tls: UpstreamTLS | None = None) -> None:
        self.sock = sock
        self.key = key
        self.idle_since = 0.0
        self.idle_timeout = 0.0
        self.tls = tls
        # The socket's timeout as last set through set_timeout (a reused connection keeps
        # its upstream's write/read timeouts: no settimeout per request).
        self.timeout: float | None = sock.gettimeout()

    def set_timeout(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def close(self) -> None:
        if self.tls is not None:
            self.tls.remember(self.sock)
        try:
            self.sock.close()
        except OSError:
            pass


_LITERAL_FAMILY: dict[str, int | None] = {}


def _literal_family(host: str) -> int | None:
    """AF_INET/AF_INET6 for an IP literal, None for a host name (memoised)."""
    family = _LITERAL_FAMILY.get(host, -1)
    if family != -1:
        return family
    family = None
    for candidate in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(candidate, host)
        except OSError:
            continue
        family = candidate
        break
    if len(_LITERAL_FAMILY) < 4096:
        _LITERAL_FAMILY[host] = family
    return family


def _connect_to(family: int, target: Any, timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(target)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def connect(address: Address, timeout: float) -> socket.socket:
    """Open a plain connection to an IP literal, a unix path or (through getaddrinfo, with
    no cache) a host name; raises OSError (TimeoutError when ``timeout`` expires)."""
    kind, host, port = address
    if kind == "unix":
        return _connect_to(socket.AF_UNIX, host, timeout)
    family = _literal_family(host)
    if family is None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    return _connect_to(family, (host, port), timeout)


def open_connection(node: Node, timeout: float, resolver: "Resolver | None") -> socket.socket:
    """A connection to ``node`` (its name resolved, its TLS handshake done) within
    ``timeout`` seconds in all. Raises socket.gaierror (name), TimeoutError, ssl.SSLError
    (handshake, certificate) or another OSError (refused, unreachable)."""
    deadline = time.monotonic() + timeout
    if node.named and resolver is not None:
        _kind, host, port = node.address
        sock = _connect_any(resolver.resolve(host, port, node.resolve_ttl), deadline)
    else:
        sock = connect(node.address, timeout)
    tls = node.tls
    if tls is None:
        return sock
    try:
        return tls.wrap(sock, max(deadline - time.monotonic(), 0.001))
    except BaseException:
        sock.close()
        raise


def _connect_any(addresses: list[SockAddr], deadline: float) -> socket.socket:
    """The first of ``addresses`` that accepts before ``deadline``."""
    error: OSError | None = None
    for family, target in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return _connect_to(family, target, left)
        except OSError as exc:
            error = exc
    raise error if error is not None else TimeoutError("connect timed out")


class _Resolved:
    __slots__ = ("addresses", "expires", "refreshing", "done", "turn", "error")

    def __init__(self) -> None:
        self.addresses: list[SockAddr] = []
        self.expires = 0.0
        self.refreshing = False
        # threading.Event is gevent's once the worker is monkey-patched.
        self.done = threading.Event()
        self.turn = 0
        self.error: OSError | None = None


class Resolver:
    """Host names of upstream nodes, resolved per worker and re-resolved every ``ttl``.

    ``resolve`` answers from the cache; a stale entry is still answered from while a
    background refresh (``spawn``) runs, so only the very first connection to a name waits
    for a lookup. A failed refresh keeps the addresses known and tries again after
    ``RETRY_AFTER_FAILURE`` seconds (at most the TTL); a name that never resolved raises
    its ``gaierror`` until a lookup succeeds.
    """

    RETRY_AFTER_FAILURE = 5.0

    def __init__(self, getaddrinfo: Callable[..., list] | None = None,
                 spawn: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._getaddrinfo = getaddrinfo
        self._spawn = spawn
        self._clock = clock
        self._entries: dict[tuple[str, int], _Resolved] = {}

    def resolve(self, host: str, port: int, ttl: float) -> list[SockAddr]:
        """The addresses of ``host``, rotated one step per call (for spreading connections)."""
        key = (host, port)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Resolved()
        if entry.expires <= self._clock():
            if entry.refreshing:
                if not entry.addresses:
                    entry.done.wait()        # another greenlet's first lookup
            elif entry.addresses and self._spawn is not None:
                entry.refreshing = True
                entry.done.clear()
                self._spawn(self._refresh, entry, host, port, ttl)
            else:
                entry.refreshing = True
                entry.done.clear()
                self._refresh(entry, host, port, ttl)
        addresses = entry.addresses
        if not addresses:
            raise entry.error or socket.gaierror(f"{host}: no address")
        count = len(addresses)
        if count == 1:
            return addresses
        turn = entry.turn % count
        entry.turn += 1
        return addresses[turn:] + addresses[:turn]

    def _refresh(self, entry: _Resolved, host: str, port: int, ttl: float) -> None:
        try:
            lookup = self._getaddrinfo or socket.getaddrinfo
            found: list[SockAddr] = []
            for family, _type, _proto, _name, sockaddr in lookup(host, port,
                                                                  type=socket.SOCK_STREAM):
                if family in (socket.AF_INET, socket.AF_INET6) and \
                        (family, sockaddr) not in found:
                    found.append((family, sockaddr))
            if not found:
                raise socket.gaierror(f"{host}: no IPv4 or IPv6 address")
        except OSError as exc:
            entry.error = exc
            entry.expires = self._clock() + min(ttl, self.RETRY_AFTER_FAILURE)
            if entry.addresses:
                log.warning("cannot re-resolve upstream host %s (%s); keeping %s", host, exc,
                            _describe(entry.addresses))
            else:
                log.error("cannot resolve upstream host %s: %s", host, exc)
            return
        finally:
            entry.refreshing = False
            entry.done.set()
        if found != entry.addresses:
            if entry.addresses:
                log.info("upstream host %s now resolves to %s", host, _describe(found))
            entry.addresses = found
        entry.error = None
        entry.expires = self._clock() + ttl


def _describe(addresses: list[SockAddr]) -> str:
    return ", ".join(str(sockaddr[0]) for _family, sockaddr in addresses)


# An idle connection younger than this is reused without the liveness probe (a recv
# syscall): upstreams close idle keep-alive connections after seconds, not milliseconds,
# and the rare one that still closed under us is retried on a fresh connection.
_PROBE_AFTER = 2.0


def _still_usable(conn: UpstreamConnection) -> bool:
    """True when an idle connection has neither been closed by the peer nor received bytes."""
    sock = conn.sock
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        if conn.tls is not None:
            # TLS cannot peek; reading processes what may legitimately arrive while idle
            # (session tickets) and finds a close_notify or EOF.
            sock.recv(1)
        else:
            sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass
    return False       # EOF (b"") or unexpected bytes: either way not reusable


class UpstreamPool:
    """Idle keep-alive connections, at most ``max_idle`` per pool key."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: dict[Hashable, deque[UpstreamConnection]] = {}

    def take_idle(self, key: Hashable, idle_timeout: float) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        oldest_ok = now - idle_timeout
        while idle:
            conn = idle.pop()
            if conn.idle_since >= oldest_ok and (now - conn.idle_since < _PROBE_AFTER
                                                 or _still_usable(conn)):
                return conn
            conn.close()
        return None

    def put_idle(self, conn: UpstreamConnection, idle_timeout: float = 60.0) -> None:
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        if len(idle) >= self.max_idle:
            conn.close()
            return
        if conn.tls is not None:
            conn.tls.remember(conn.sock)
        conn.idle_since = time.monotonic()
        conn.idle_timeout = idle_timeout
        idle.append(conn)

    def sweep(self, now: float | None = None) -> int:
        """Close the connections idle for longer than their upstream allows; how many."""
        now = time.monotonic() if now is None else now
        closed = 0
        for key in list(self._idle):
            idle = self._idle[key]
            # Oldest first (left): stop at the first one still young enough.
            while idle and now - idle[0].idle_since > idle[0].idle_timeout:
                idle.popleft().close()
                closed += 1
            if not idle:
                del self._idle[key]
        return closed

    def close_all(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
