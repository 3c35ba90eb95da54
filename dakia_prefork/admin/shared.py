"""The admin API on a node whose config_source is etcd: changes go to etcd, not to the
master.

Theory of operation
-------------------
On such a node the file is not the source and neither is this node: the document in etcd
is. So a change (``PUT``, ``PATCH``, rollback) is

1. validated by the master exactly as the document would be when it arrives through the
   watch (with this node's local file: fleet/loaders.py), and refused with 422 when
   invalid, so a bad document never reaches etcd through the API;
2. written to etcd in one transaction that compares the key's mod_revision with the
   change's base (the ``If-Match`` ETag, which on every node is that mod_revision), so a
   stale base gets 409 whichever node took it, and two nodes never overwrite each other;
3. *not* published here: this node, like every other, follows it through its watch. The
   answer waits (up to :data:`FOLLOW_WAIT`) until this node's master serves the new
   revision, so a client that sends a request right after its PUT sees the new routing
   on this node.

``GET /config`` returns the shared document as etcd holds it (before ``${NAME}``
substitution) with the revision as ETag. ``?persist=true`` is refused: there is no file
to write. A ``POST /reload`` still reloads the local file (node-level settings).
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import gevent

from ..config.model import EtcdSettings
from .api import Outcome, Version
from .backend import MasterBackend

if TYPE_CHECKING:
    from ..fleet.etcd import Etcd

FOLLOW_WAIT = 5.0
"""How long an accepted change waits for this node to serve it before answering."""
CONFLICT_WAIT = 1.0
"""How long a refused change waits for this node to serve the revision that won."""

PERSIST_REFUSED = ("?persist=true: this node's config_source is etcd, so the file is not "
                   "the source and nothing is written to it; the change would go to etcd "
                   "for every node: send it without persist")


class SharedBackend(MasterBackend):
    """:class:`MasterBackend` whose changes go to etcd."""

    def __init__(self, etcd: EtcdSettings, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._etcd_settings = etcd
        self._etcd: Etcd | None = None

    def _client(self) -> Etcd:
        """One client for the process's life (its connections kept alive): the dashboard
        reads the registry every 2 s. urllib3's pool serves greenlets one connection
        each."""
        if self._etcd is None:
            from ..fleet.etcd import Etcd
            self._etcd = Etcd(self._etcd_settings)
        return self._etcd

    def version(self, number: int) -> Version | None:
        found = super().version(number)
        if found is None:
            return None
        return Version(found.number, found.document, self._store.etcd_revision(number))

    def publish(self, document: dict[str, Any], *, base: int | None, persist: bool,
                origin: str) -> Outcome:
        if persist:
            return Outcome(refused=PERSIST_REFUSED)
        errors, _notices = self.check(document)
        if errors:
            return Outcome(errors=errors)
        from ..fleet.etcd import EtcdError
        try:
            done, revision = self._client().put(
                json.dumps(document, indent=2, ensure_ascii=False).encode(), base)
        except EtcdError as exc:
            return Outcome(unavailable=f"etcd: {exc}; nothing changed")
        if not done:
            # Give this node the moment it needs to follow the change that won, so that a
            # PATCH retrying on the current document patches that one, not ours again.
            self._serving(revision, CONFLICT_WAIT)
            return Outcome(conflict=revision)
        return self._followed(revision)

    def fleet_nodes(self) -> dict[str, Any] | None:
        """The fleet's registry (fleet/registry.py): every node alive and what it serves,
        and which of them is this one. Raises EtcdError when etcd cannot be read."""
        from ..fleet.registry import list_nodes, node_id
        nodes = list_nodes(self._client(), self._etcd_settings.key)
        return {"key": self._etcd_settings.key, "self": node_id(self._control.master_pid),
                "nodes": nodes}

    def _serving(self, revision: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            served = self._store.etcd_revision(self._control.config_version)
            if served is not None and served >= revision:
                return True
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.01)

    def _followed(self, revision: int) -> Outcome:
        """The outcome once this node serves ``revision`` (or a later one)."""
        deadline = time.monotonic() + FOLLOW_WAIT
        while time.monotonic() < deadline:
            number = self._control.config_version
            served = self._store.etcd_revision(number)
            if served is not None and served >= revision:
                self._wait_served(number)
                return Outcome(version=number, revision=revision)
            last = self._control.last_reload()
            if last is not None and not last.get("ok") \
                    and last.get("origin") == f"etcd revision {revision}":
                # Valid here a moment ago; refused by the master now (the local file changed
                # in between, say): etcd has it, this node does not serve it.
                return Outcome(errors=[f"written to etcd (revision {revision}), but this "
                                       "node refused it:", *last.get("errors", [])])
            gevent.sleep(0.01)
        return Outcome(unavailable=f"written to etcd (revision {revision}); this node does "
                                   f"not serve it after {FOLLOW_WAIT:g}s (is its follower "
                                   "connected? see status)")
