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


def connect(address: Address, timeout: float) -> socket.socket:
    """Open a connection; raises OSError (TimeoutError when ``timeout`` expires)."""
    kind, host, port = address
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(host)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


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
        oldest_ok = time.monotonic() - idle_timeout
        while idle:
            conn = idle.pop()
            if conn.idle_since >= oldest_ok and _still_usable(conn.sock):
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
