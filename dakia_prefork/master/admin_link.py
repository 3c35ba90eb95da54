"""The master's side of the admin process: its listener, its pid and its control channel.

The admin process serves the REST API (admin/) and is supervised like the health checker:
one child, forked when the config has an ``admin`` section, respawned with back-off when it
dies, stopped when the section goes. The master binds its listener (so a binary upgrade
hands it over with the gateway's) and talks to it over a ``socketpair`` (admin/channel.py)
that the master's ``select`` watches; reads and writes here never block, and what cannot be
written at once waits in a buffer the loop flushes when the socket is writable.
"""
from __future__ import annotations

import errno
import logging
import socket
from typing import Any, Callable

from ..admin.channel import ChannelError, LineReader, encode
from .listeners import Listener
from .spawner import Spawner

log = logging.getLogger("dakia.master")

_MAX_BACKOFF = 16.0
_MAX_QUEUED_BYTES = 16 * 1024 * 1024


class AdminLink:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.pid: int | None = None
        self.not_before = 0.0
        self.failures = 0
        self._channel: socket.socket | None = None
        self._reader = LineReader()
        self._out = bytearray()

    @property
    def listening(self) -> socket.socket:
        """The admin listener's socket (one: the admin process is a single process)."""
        return self.listener.sockets[0]

    # -- the process -------------------------------------------------------------------
    def start(self, spawner: Spawner, now: float,
              become: Callable[[socket.socket], Any]) -> int:
        """Fork the admin process; ``become(channel)`` runs in the child and never returns."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        mine.setblocking(False)

        def child() -> Any:
            mine.close()
            return become(theirs)
        try:
            self.pid = spawner.fork(child)
        finally:
            theirs.close()
        self._channel = mine
        self._reader = LineReader()
        self._out = bytearray()
        self.not_before = now + 1.0             # spawned at most once a second
        return self.pid

    def exited(self, now: float, clean: bool) -> float:
        """The admin process was reaped; the delay before the next one."""
        self.pid = None
        self.close_channel()
        self.failures = 0 if clean else self.failures + 1
        delay = 0.0 if clean else min(_MAX_BACKOFF, 0.25 * 2 ** (self.failures - 1))
        self.not_before = max(self.not_before, now + delay)
        return delay

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._out = bytearray()

    def drop_in_child(self) -> None:
        """In another child of the master: close what only the master may hold."""
        if self._channel is not None:
            self._channel.close()
        self.listener.close(unlink=False)

    # -- the channel -------------------------------------------------------------------
    @property
    def fd(self) -> int | None:
        return self._channel.fileno() if self._channel is not None else None

    @property
    def wants_write(self) -> bool:
        return bool(self._out) and self._channel is not None

    def read(self) -> list[dict[str, Any]]:
        """The requests the channel holds now; a broken or lying peer closes it."""
        if self._channel is None:
            return []
        messages: list[dict[str, Any]] = []
        while True:
            try:
                data = self._channel.recv(65536)
            except (BlockingIOError, InterruptedError):
                return messages
            except OSError as exc:
                log.error("admin channel: %s", exc)
                self.close_channel()
                return messages
            if not data:
                self.close_channel()         # the process is exiting; reaped soon
                return messages
            try:
                messages.extend(self._reader.feed(data))
            except ChannelError as exc:
                log.error("admin channel: the admin process sent %s; closing it", exc)
                self.close_channel()
                return messages

    def reply(self, message: dict[str, Any]) -> None:
        if self._channel is None:
            return                           # its process died: nobody waits for it
        self._out += encode(message)
        if len(self._out) > _MAX_QUEUED_BYTES:
            log.error("admin channel: the admin process reads nothing; closing it")
            self.close_channel()
            return
        self.flush()

    def flush(self) -> None:
        while self._out and self._channel is not None:
            try:
                sent = self._channel.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno != errno.EPIPE:
                    log.error("admin channel: %s", exc)
                self.close_channel()
                return
            del self._out[:sent]
