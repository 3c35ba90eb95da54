"""Upstream nodes and the per-worker keep-alive pool of connections to them.

The pool is keyed by address, not by config version, so a reload that keeps a node keeps its
warm connections. Idle connections are reused last-in first-out (the warmest socket, the one
least likely to have been closed by the upstream's own idle timer) and checked before reuse:
a socket that is readable while idle has been closed or has sent garbage, and is dropped.
"""
from __future__ import annotations

import socket
import time
from collections import deque

Address = tuple[str, str, int]      # ("tcp", host, port) or ("unix", path, 0)


class Node:
    """One upstream node of one config version."""

    __slots__ = ("address", "label", "weight", "host_header")

    def __init__(self, address: Address, weight: int = 1) -> None:
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


class UpstreamConnection:
    __slots__ = ("sock", "address", "idle_since")

    def __init__(self, sock: socket.socket, address: Address) -> None:
        self.sock = sock
        self.address = address
        self.idle_since = 0.0

    def close(self) -> None:
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


def connect(address: Address, timeout: float) -> socket.socket:
    """Open a connection; raises OSError (TimeoutError when ``timeout`` expires).

    IP literals are connected to directly: ``create_connection`` would send even those
    through getaddrinfo, which gevent runs in a thread pool, on every new connection.
    """
    kind, host, port = address
    if kind == "unix":
        family, target = socket.AF_UNIX, host
    else:
        family = _literal_family(host)
        if family is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        target = (host, port)
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


# An idle connection younger than this is reused without the liveness probe (a recv
# syscall): upstreams close idle keep-alive connections after seconds, not milliseconds,
# and the rare one that still closed under us is retried on a fresh connection.
_PROBE_AFTER = 2.0


def _still_usable(sock: socket.socket) -> bool:
    """True when an idle socket has neither been closed by the peer nor received bytes."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False       # EOF (b"") or unexpected bytes: either way not reusable


class UpstreamPool:
    """Idle keep-alive connections, at most ``max_idle`` per address."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: dict[Address, deque[UpstreamConnection]] = {}

    def take_idle(self, address: Address, idle_timeout: float) -> UpstreamConnection | None:
        idle = self._idle.get(address)
        if not idle:
            return None
        now = time.monotonic()
        oldest_ok = now - idle_timeout
        while idle:
            conn = idle.pop()
            if conn.idle_since >= oldest_ok and (now - conn.idle_since < _PROBE_AFTER
                                                 or _still_usable(conn.sock)):
                return conn
            conn.close()
        return None

    def put_idle(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.address)
        if idle is None:
            idle = self._idle[conn.address] = deque()
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close_all(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
