"""Covering vacant slots: accepting on another slot's sockets while that slot has no worker.

Theory of operation
-------------------
The kernel spreads new connections over a listener's SO_REUSEPORT sockets, one per slot,
whether or not a worker accepts on each. When a slot's worker keeps dying at boot, the
master backs off before respawning it, and the connections hashed to that slot's socket
would wait in its queue all that time. So every worker is given, besides its own sockets,
those of the other slots (``spare``), and accepts on none of them until the master marks
a slot vacant in the control block (master/arbiter.py ``_cover_vacant_slots``, after a
grace of a couple of seconds). A greenlet polls that word a few times a second — a read of
shared memory, nothing on the request path — and starts one acceptor per socket of each
newly vacant slot, running the worker's own accept loop; when the bit clears (the slot has
a ready worker again) it stops them. Connections already accepted are served to the end.
Several workers accepting on one socket is safe: each connection goes to exactly one.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import gevent

from ..shm.control import ControlBlock
from .context import ListenerInfo

log = logging.getLogger("dakia.worker")

POLL_SECONDS = 0.25


class Cover:
    def __init__(self, control: ControlBlock, spare: list[tuple[int, Any, ListenerInfo]],
                 accept_loop: Callable[[Any, ListenerInfo], None]) -> None:
        self.control = control
        self.by_slot: dict[int, list[tuple[Any, ListenerInfo]]] = {}
        for slot, sock, info in spare:
            self.by_slot.setdefault(slot, []).append((sock, info))
        self.accept_loop = accept_loop
        self.acceptors: dict[int, list[gevent.Greenlet]] = {}
        self._poller: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.by_slot:
            self._poller = gevent.spawn(self._poll)

    def _poll(self) -> None:
        while True:
            self.update()
            gevent.sleep(POLL_SECONDS)

    def update(self) -> None:
        vacant = self.control.vacant
        for slot, sockets in self.by_slot.items():
            covering = slot in self.acceptors
            if slot in vacant and not covering:
                log.info("covering vacant slot %d", slot)
                self.acceptors[slot] = [gevent.spawn(self.accept_loop, sock, info)
                                        for sock, info in sockets]
            elif covering and slot not in vacant:
                log.info("slot %d has a worker again; no longer covering it", slot)
                for acceptor in self.acceptors.pop(slot):
                    acceptor.kill(block=False)

    def stop(self) -> None:
        """Stop covering and close our copies (a drain): the master keeps the sockets."""
        if self._poller is not None:
            self._poller.kill(block=False)
        for acceptors in self.acceptors.values():
            for acceptor in acceptors:
                acceptor.kill(block=False)
        self.acceptors.clear()
        for sockets in self.by_slot.values():
            for sock, _info in sockets:
                sock.close()
