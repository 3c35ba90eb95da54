"""Listening sockets: one SO_REUSEPORT socket per worker slot, all owned by the master.

Why one socket per slot (DESIGN.md): a single shared accept queue does not spread load
across processes, and closing a per-worker SO_REUSEPORT socket drops the connections queued
on it. The master binds and keeps every socket, and worker ``i`` accepts on socket ``i`` of
each listener, so a worker that exits never takes a queue down with it.

A unix-domain listener cannot be split by the kernel; it is one socket shared by all slots.

SO_REUSEPORT would silently let a second gateway of the same user share our port, so each
TCP address is first probed with a plain bind: if anything holds it, start fails with
"address already in use" as it would without reuseport.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

BACKLOG = 2048


@dataclass(frozen=True)
class ListenerSpec:
    """Where to listen: ``kind`` "tcp" (host, port) or "unix" (path), for one gateway."""

    gateway: str
    kind: str
    host: str
    port: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.host, self.port)

    @property
    def label(self) -> str:
        if self.kind == "unix":
            return "unix:" + self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class Listener:
    spec: ListenerSpec
    sockets: list[socket.socket] = field(default_factory=list)   # index = worker slot

    def close(self) -> None:
        for sock in {id(s): s for s in self.sockets}.values():
            sock.close()
        if self.spec.kind == "unix":
            try:
                os.unlink(self.spec.host)
            except FileNotFoundError:
                pass


class BindError(Exception):
    pass


def specs_of(config: dict[str, Any]) -> list[ListenerSpec]:
    specs = []
    for gateway in config["gateways"]:
        for address in gateway["bind_addresses"]:
            if "unix" in address:
                specs.append(ListenerSpec(gateway["name"], "unix", address["unix"], 0))
            else:
                specs.append(ListenerSpec(gateway["name"], "tcp", address["host"],
                                          int(address["port"])))
    return specs


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"{host}:{port}: cannot resolve: {exc}") from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, sockaddr


def _tcp_socket(family: int, sockaddr: tuple[Any, ...], reuseport: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # As nginx: "::" means IPv6 only, so "0.0.0.0" and "::" can both be listed.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_tcp(spec: ListenerSpec, slots: int) -> list[socket.socket]:
    family, sockaddr = _resolve(spec.host, spec.port)
    sockets: list[socket.socket] = []
    try:
        _tcp_socket(family, sockaddr, reuseport=False).close()
        for _ in range(slots):
            sock = _tcp_socket(family, sockaddr, reuseport=True)
            sockets.append(sock)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"{spec.label}: address already in use") from None
        raise BindError(f"{spec.label}: {exc.strerror or exc}") from None
    return sockets


def _bind_unix(spec: ListenerSpec, slots: int) -> list[socket.socket]:
    path = spec.host
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise BindError(f"{spec.label}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)          # a stale socket file of a dead process
        else:
            raise BindError(f"{spec.label}: address already in use")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise BindError(f"{spec.label}: {exc.strerror or exc}") from None
    return [sock] * slots


def bind(spec: ListenerSpec, slots: int) -> Listener:
    sockets = _bind_unix(spec, slots) if spec.kind == "unix" else _bind_tcp(spec, slots)
    return Listener(spec, sockets)


def bind_all(specs: list[ListenerSpec], slots: int) -> list[Listener]:
    bound: list[Listener] = []
    try:
        for spec in specs:
            bound.append(bind(spec, slots))
    except BindError:
        for listener in bound:
            listener.close()
        raise
    return bound
