"""The master's side of the config follower (fleet/follower.py): its process and the
channel it hands documents over on.

Supervised as the other helpers are (master/helpers.py: started while the config has an
etcd ``config_source``, respawned with backoff when it dies), with one addition: a
``socketpair`` made before each fork, whose end here the master's ``select`` watches. The
follower only sends (``{"op": "document", "revision": R, "path": ...}``); nothing is
answered, so reads here never block and nothing is ever written. Of the documents that
arrive while the loader is busy only the newest matters (each is a whole config): an older
one still waiting is dropped, with its file.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, NoReturn

from ..admin.channel import ChannelError, LineReader
from ..config.model import Settings
from ..files import remove_quietly
from .helpers import HelperChild
from .spawner import Spawner

log = logging.getLogger("dakia.master")


class FollowerLink:
    def __init__(self, become: Callable[[socket.socket], NoReturn]) -> None:
        self.helper = HelperChild("config follower", lambda s: s.etcd is not None,
                                  self._become)
        self._become_with = become
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._channel: socket.socket | None = None
        self._reader = LineReader()
        self.pending: dict[str, Any] | None = None
        """The newest document handed over and not yet loaded."""

    @property
    def pid(self) -> int | None:
        return self.helper.pid

    @property
    def fd(self) -> int | None:
        return self._channel.fileno() if self._channel is not None else None

    def supervise(self, spawner: Spawner, settings: Settings, now: float) -> None:
        helper = self.helper
        if helper.pid is not None or now < helper.not_before or not helper.wanted(settings):
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        mine.setblocking(False)
        self._pair = (mine, theirs)
        try:
            helper.supervise(spawner, settings, now)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
            self._pair = None
        self.close_channel()
        self._channel = mine
        self._reader = LineReader()

    def _become(self) -> NoReturn:
        assert self._pair is not None
        mine, theirs = self._pair
        mine.close()                       # the master's end
        self.drop_in_child()
        self._become_with(theirs)

    def exited(self, status: int, now: float, stopping: bool) -> None:
        self.helper.exited(status, now, stopping)
        self.read()                        # what it sent before it went still counts
        self.close_channel()

    def read(self) -> None:
        """Take what the channel holds now into :attr:`pending`."""
        while self._channel is not None:
            try:
                data = self._channel.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("config follower channel: %s", exc)
                self.close_channel()
                return
            if not data:
                self.close_channel()
                return
            try:
                messages = self._reader.feed(data)
            except ChannelError as exc:
                log.error("config follower channel: the follower sent %s; closing it", exc)
                self.close_channel()
                return
            for message in messages:
                self._take(message)

    def _take(self, message: dict[str, Any]) -> None:
        revision = message.get("revision")
        if message.get("op") != "document" or not isinstance(revision, int):
            log.error("config follower channel: unexpected message %.200r", message)
            return
        path = message.get("path")
        if path is not None and not isinstance(path, str):
            log.error("config follower channel: unexpected message %.200r", message)
            return
        if self.pending is not None:
            self.drop(self.pending)
        self.pending = message

    def take_pending(self) -> dict[str, Any] | None:
        pending, self.pending = self.pending, None
        return pending

    @staticmethod
    def drop(message: dict[str, Any]) -> None:
        """Remove the document file of a message that will not be loaded (or was)."""
        path = message.get("path")
        if isinstance(path, str):
            remove_quietly(path)

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def drop_in_child(self) -> None:
        """In another child of the master: close what only the master may hold."""
        if self._channel is not None:
            self._channel.close()

    def signal(self, spawner: Spawner, sig: int) -> None:
        self.helper.signal(spawner, sig)

    def stop(self, stop_child: Callable[[int, float], None], grace: float) -> None:
        self.helper.stop(stop_child, grace)
        self.close_channel()
        if self.pending is not None:
            self.drop(self.pending)
            self.pending = None
