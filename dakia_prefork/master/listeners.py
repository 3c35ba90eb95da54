"""Listening sockets: one SO_REUSEPORT socket per worker slot, all owned by the master.

Why one socket per slot (DESIGN.md): a single shared accept queue does not spread load
across processes, and closing a per-worker SO_REUSEPORT socket drops the connections queued
on it. The master binds and keeps every socket, and worker ``i`` accepts on socket ``i`` of
each listener, so a worker that exits never takes a queue down with it.

A unix-domain listener cannot be split by the kernel; it is one socket shared by all slots
(so is a socket handed over by systemd without SO_REUSEPORT).

Sockets also arrive already bound: from the old master during a binary upgrade
(``DAKIA_INHERIT_FDS``, every socket of every slot) and from systemd socket activation
(``LISTEN_FDS``). They are adopted by address; a slot with no inherited socket gets a new
SO_REUSEPORT socket on the same address, which the kernel allows because we own the others.

SO_REUSEPORT would silently let a second gateway of the same user share our port, so each
TCP address is first probed with a plain bind: if anything holds it, start fails with
"address already in use" as it would without reuseport. The probe and the binds after it
are one step for this user's masters: two started at once could otherwise both find the
port free and both bind it. They take turns through :func:`bind_window`.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    sockets: list[socket.socket] = field(default_factory=list)   # index = socket slot
    shared: bool = False      # one socket for every slot (unix, or systemd without reuseport)

    def socket_for(self, index: int) -> socket.socket:
        return self.sockets[0] if self.shared else self.sockets[index]

    def grow(self, count: int) -> None:
        """Have at least ``count`` per-slot sockets (TTIN, or fewer inherited than slots)."""
        if self.shared:
            return
        family, sockaddr = _resolve(self.spec.host, self.spec.port)
        while len(self.sockets) < count:
            try:
                sock = _tcp_socket(family, sockaddr, reuseport=True)
                sock.listen(BACKLOG)
            except OSError as exc:
                raise BindError(f"{self.spec.label}: {exc.strerror or exc}") from None
            self.sockets.append(sock)

    def close(self, unlink: bool = True) -> None:
        for sock in {id(s): s for s in self.sockets}.values():
            sock.close()
        if self.spec.kind == "unix" and unlink:
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


BIND_WINDOW_WAIT = 5.0
"""Seconds to wait for another master's probe and binds before going on without the turn."""


@contextmanager
def bind_window(wait: float = BIND_WINDOW_WAIT) -> Iterator[None]:
    """Hold this user's turn to probe and bind TCP listeners.

    The turn is an abstract unix-domain socket name, bound for the length of the step: no
    file to leave behind, and the kernel frees the name when its holder dies, however it
    dies. A name held for longer than ``wait`` (another user squatting on it, say) is not
    waited for: the step then goes on as it would without the turn."""
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                holder.bind(f"\0dakia-prefork-bind-{os.getuid()}")
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
        yield
    finally:
        holder.close()


def _bind_tcp(spec: ListenerSpec, slots: int) -> list[socket.socket]:
    family, sockaddr = _resolve(spec.host, spec.port)
    sockets: list[socket.socket] = []
    try:
        with bind_window():
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
    if spec.kind == "unix":
        return Listener(spec, _bind_unix(spec, 1), shared=True)
    return Listener(spec, _bind_tcp(spec, slots))


def open_listeners(specs: list[ListenerSpec], slots: int,
                   inherited: dict[tuple[str, str, int], list[socket.socket]]) -> list[Listener]:
    """Adopt the inherited socket of each spec where there is one, bind the others."""
    opened: list[Listener] = []
    try:
        for spec in specs:
            sockets = inherited.pop(spec_key(spec), None)
            if sockets:
                shared = spec.kind == "unix" or not _reuseport(sockets[0])
                listener = Listener(spec, sockets, shared=shared)
                listener.grow(slots)
            else:
                listener = bind(spec, slots)
            opened.append(listener)
    except BindError:
        for listener in opened:
            listener.close(unlink=False)
        raise
    for leftovers in inherited.values():
        # Listeners the old master had and this config no longer has.
        for sock in leftovers:
            sock.close()
    return opened


def _reuseport(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))
    except OSError:
        return False


# -- handing sockets over -----------------------------------------------------------------
INHERIT_ENV = "DAKIA_INHERIT_FDS"


def _key_of(sock: socket.socket) -> tuple[str, str, int]:
    if sock.family == socket.AF_UNIX:
        name = sock.getsockname()
        return ("unix", name.decode() if isinstance(name, bytes) else name, 0)
    host, port = sock.getsockname()[:2]
    return ("tcp", host, port)


def inherit_value(listeners: list[Listener]) -> str:
    """``DAKIA_INHERIT_FDS`` for a new master: the descriptors of every listening socket,
    made inheritable; the new master learns their addresses from the sockets themselves."""
    fds = []
    for listener in listeners:
        for sock in {id(s): s for s in listener.sockets}.values():
            os.set_inheritable(sock.fileno(), True)
            fds.append(str(sock.fileno()))
    return ",".join(fds)


def inherited_sockets(environ: dict[str, str]) -> dict[tuple[str, str, int], list[socket.socket]]:
    """Listening sockets handed to this process, by address: from an old master
    (DAKIA_INHERIT_FDS) or from systemd (LISTEN_FDS, when LISTEN_PID is us)."""
    fds: list[int] = []
    value = environ.pop(INHERIT_ENV, "")
    if value:
        fds += [int(fd) for fd in value.split(",") if fd.strip().isdigit()]
    if environ.get("LISTEN_PID") == str(os.getpid()):
        count = int(environ.pop("LISTEN_FDS", "0") or 0)
        environ.pop("LISTEN_PID", None)
        environ.pop("LISTEN_FDNAMES", None)
        fds += list(range(3, 3 + count))
    found: dict[tuple[str, str, int], list[socket.socket]] = {}
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        os.set_inheritable(fd, False)
        found.setdefault(_normalised_key(_key_of(sock)), []).append(sock)
    return found


def _normalised_key(key: tuple[str, str, int]) -> tuple[str, str, int]:
    kind, host, port = key
    return (kind, host.split("%", 1)[0], port)


def spec_key(spec: ListenerSpec) -> tuple[str, str, int]:
    """The address of ``spec`` as ``_key_of`` reports a socket bound to it."""
    if spec.kind == "unix":
        return spec.key
    _family, sockaddr = _resolve(spec.host, spec.port)
    return _normalised_key(("tcp", sockaddr[0], sockaddr[1]))
