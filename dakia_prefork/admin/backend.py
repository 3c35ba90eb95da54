"""The admin process's :class:`ConfigBackend`: reads from the store and the control block,
changes through the master.

Reading needs no master: the current version is the one the control block publishes, its
document is the store's ``v<N>.source.json``, status and readiness are the control block's
records. Every change goes to the master over the control channel (admin/channel.py) as
the path of a candidate file written here (``state_dir/admin``, mode 0600, removed once
answered), and the master's reply becomes the :class:`Outcome`. A published change is
answered once every ready worker serves it (or after :data:`SERVED_WAIT`), so a client that
sends a request right after its PUT sees the new routing.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from ..config.store import ConfigStore
from ..files import remove_quietly, write_all
from ..status import collect
from ..shm.control import ControlBlock
from .api import Outcome, Version
from .channel import ChannelError, LineReader, encode

log = logging.getLogger("dakia.admin")

SERVED_WAIT = 2.0
"""How long an accepted change waits for every ready worker to serve it before answering."""


class MasterGone(Exception):
    """The channel to the master closed: the master is stopping or gone."""


class MasterChannel:
    """The admin process's end of the control channel: requests answered by id."""

    def __init__(self, sock: Any, on_close: Callable[[], None]) -> None:
        self._sock = sock
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._waiting: dict[int, AsyncResult] = {}
        self._send_lock = Semaphore()
        self._closed = False
        gevent.spawn(self._read_loop)

    def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._closed:
            raise MasterGone()
        number = next(self._ids)
        waiter: AsyncResult = AsyncResult()
        self._waiting[number] = waiter
        try:
            with self._send_lock:
                self._sock.sendall(encode({**message, "id": number}))
            reply = waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise TimeoutError(f"the master did not answer within {timeout:g}s") from None
        except OSError:
            raise MasterGone() from None
        finally:
            self._waiting.pop(number, None)
        if reply is None:
            raise MasterGone()
        return dict(reply)

    def _read_loop(self) -> None:
        reader = LineReader()
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                for message in reader.feed(data):
                    waiter = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
                    if waiter is not None:
                        waiter.set(message)
        except (OSError, ChannelError) as exc:
            log.error("admin: the control channel broke: %s", exc)
        self._closed = True
        for waiter in list(self._waiting.values()):
            waiter.set(None)
        self._on_close()


class MasterBackend:
    """:class:`ConfigBackend` of the admin process."""

    def __init__(self, channel: MasterChannel, store: ConfigStore, control: ControlBlock,
                 candidates: str, answer_timeout: float) -> None:
        self._channel = channel
        self._store = store
        self._control = control
        self._candidates = candidates
        self._timeout = answer_timeout
        self._documents: dict[int, dict[str, Any]] = {}
        self._names = itertools.count(1)
        self.metrics_source: Callable[[], bytes] | None = None

    # -- reading -----------------------------------------------------------------------
    def current(self) -> Version:
        number = self._control.config_version
        found = self.version(number)
        if found is None:
            raise RuntimeError(f"the published version v{number} is not in the store")
        return found

    def version(self, number: int) -> Version | None:
        document = self._documents.get(number)
        if document is None:
            try:
                document = self._store.read_source(number)
            except (OSError, ValueError):
                return None
            if len(self._documents) >= 8:
                self._documents.clear()
            self._documents[number] = document
        return Version(number, document)

    def versions(self) -> list[int]:
        return self._store.versions()

    def status(self) -> dict[str, Any]:
        """The report of ``dakia-master status --json``: one source for both."""
        return collect(self._store.state_dir, self._control.master_pid)

    def ready(self) -> bool:
        control = self._control
        if not control.ready:
            return False
        current = control.config_version
        serving = [r for r in control.records() if r.state == "ready"]
        return bool(serving) and all(r.config_version == current for r in serving)

    def fleet_nodes(self) -> dict[str, Any] | None:
        """Not a fleet node: no registry to read (admin/shared.py reads etcd's)."""
        return None

    def metrics(self) -> bytes:
        if self.metrics_source is None:
            raise RuntimeError("metrics are not available in this process")
        return self.metrics_source()

    # -- changing ----------------------------------------------------------------------
    def check(self, document: dict[str, Any]) -> tuple[list[str], list[str]]:
        reply = self._with_candidate(document, {"op": "check"})
        if reply.get("unavailable"):
            return [str(reply["unavailable"])], []
        return list(reply.get("errors", [])), list(reply.get("notices", []))

    def publish(self, document: dict[str, Any], *, base: int | None, persist: bool,
                origin: str) -> Outcome:
        reply = self._with_candidate(document, {"op": "publish", "base": base,
                                                "persist": persist, "origin": origin})
        return self._outcome(reply)

    def reload(self, origin: str) -> Outcome:
        return self._outcome(self._call({"op": "reload", "origin": origin}))

    def _outcome(self, reply: dict[str, Any]) -> Outcome:
        if reply.get("unavailable"):
            return Outcome(unavailable=str(reply["unavailable"]))
        if reply.get("conflict") is not None:
            return Outcome(conflict=int(reply["conflict"]))
        if reply.get("errors"):
            return Outcome(errors=[str(e) for e in reply["errors"]])
        version = int(reply["version"])
        self._wait_served(version)
        return Outcome(version=version, not_applied=list(reply.get("not_applied", [])),
                       persist_error=reply.get("persist_error"))

    def _wait_served(self, version: int) -> None:
        deadline = time.monotonic() + SERVED_WAIT
        while time.monotonic() < deadline:
            serving = [r for r in self._control.records() if r.state == "ready"]
            if all(r.config_version >= version for r in serving):
                return
            gevent.sleep(0.01)

    def _with_candidate(self, document: dict[str, Any],
                        message: dict[str, Any]) -> dict[str, Any]:
        os.makedirs(self._candidates, mode=0o700, exist_ok=True)
        path = os.path.join(self._candidates,
                            f"candidate-{os.getpid()}-{next(self._names)}.json")
        data = json.dumps(document, ensure_ascii=False).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            return self._call({**message, "path": path})
        finally:
            remove_quietly(path)

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._channel.call(message, self._timeout)
        except MasterGone:
            return {"unavailable": "the master is stopping; nothing changed"}
        except TimeoutError as exc:
            return {"unavailable": f"{exc}; the change may still be applied: see GET /config"}
