"""The fleet's registry: each node says in etcd which version and revision it serves.

Theory of operation
-------------------
Every node's config follower keeps one key, ``<key>/nodes/<host>-<master pid>``, whose
value is a small JSON record: the node's host name and master pid, the config version and
etcd revision its master serves, its follower's state, its admin address, and since when
the record says so. The key is put with a lease of :data:`TTL` seconds that the follower
renews every :data:`BEAT`; a node that stops revokes it (its key goes at once), and one
that dies or loses etcd lets it expire, so the prefix lists the nodes alive now, as
Kong's control plane lists its data planes. Any node's admin API reads the prefix
(``GET /fleet/nodes``), and the dashboard shows it: which node lags behind a change.

The registry is advisory: a node that cannot write it (etcd down, a role without write
access to the prefix) keeps following and serving, and says why once in its log.

Records read back are bounded (:data:`MAX_NODES` keys, :data:`MAX_RECORD` bytes each) and
checked field by field, since anything with write access to the prefix can put anything.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config.model import EtcdSettings
from .etcd import Etcd, EtcdError

log = logging.getLogger("dakia.fleet")

TTL = 15
"""Seconds a node's key outlives its last renewal."""
BEAT = 5.0
"""Seconds between renewals (three per TTL: one lost renewal does not drop the node)."""
CHECK = 1.0
"""Seconds between looks at what the node serves (a change is put at once)."""
MAX_NODES = 1000
MAX_RECORD = 4096

_FIELDS: dict[str, tuple[type, ...]] = {
    "host": (str,), "master_pid": (int,), "version": (int,), "revision": (int, type(None)),
    "follower": (str, type(None)), "admin": (str, type(None)), "since": (int, float)}


def nodes_prefix(key: str) -> str:
    return key.rstrip("/") + "/nodes/"


def node_id(master_pid: int, host: str | None = None) -> str:
    """A node's name in the registry: its host name and master pid, unique on one machine
    and among machines with distinct names."""
    return f"{host or socket.gethostname()}-{master_pid}"


def parse_record(name: str, value: bytes) -> dict[str, Any] | None:
    """One key's record, or None when it is not one (too big, not JSON, wrong fields)."""
    if len(value) > MAX_RECORD:
        return None
    try:
        record = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    out: dict[str, Any] = {"node": name[:200]}
    for field, types in _FIELDS.items():
        got = record.get(field)
        if not isinstance(got, types) or isinstance(got, bool):
            return None
        out[field] = got[:200] if isinstance(got, str) else got
    return out


def list_nodes(etcd: Etcd, key: str) -> list[dict[str, Any]]:
    """The records of the nodes registered now, in name order; malformed ones left out."""
    prefix = nodes_prefix(key)
    out = []
    for found, value in etcd.range_prefix(prefix, MAX_NODES):
        record = parse_record(found[len(prefix):], value)
        if record is not None:
            out.append(record)
    return out


class Registrar:
    """Keeps this node's record in etcd: ``record()`` says what the node serves now."""

    def __init__(self, etcd: Etcd, settings: EtcdSettings, name: str,
                 record: Callable[[], dict[str, Any]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._etcd = etcd
        self._key = nodes_prefix(settings.key) + name
        self._record = record
        self._clock = clock
        self._lease: int | None = None
        self._written: dict[str, Any] | None = None
        self._since = time.time()
        self._renewed = 0.0
        self._failing = False

    @property
    def key(self) -> str:
        return self._key

    def tick(self) -> None:
        """Register, put a changed record, or renew the lease, as due; never raises for
        etcd (the next tick tries again)."""
        now = self._clock()
        try:
            current = self._record()
            if current != self._written:
                self._since = time.time()
            if self._lease is None:
                self._lease = self._etcd.grant(TTL)
                self._put(current, now)
            elif current != self._written:
                self._put(current, now)
            elif now - self._renewed >= BEAT:
                if self._etcd.keep_alive(self._lease):
                    self._renewed = now
                else:                          # expired (etcd was away): register anew
                    self._lease = self._etcd.grant(TTL)
                    self._put(current, now)
        except EtcdError as exc:
            self._lease = None
            if not self._failing:
                log.warning("config follower: cannot register this node in etcd under %s: "
                            "%s; it goes on serving, and tries again", self._key, exc)
            self._failing = True
            return
        if self._failing:
            log.info("config follower: this node is registered in etcd again (%s)", self._key)
        self._failing = False

    def _put(self, current: dict[str, Any], now: float) -> None:
        assert self._lease is not None
        value = json.dumps({**current, "since": round(self._since, 3)}).encode()
        self._etcd.put_key(self._key, value, self._lease)
        self._written = current
        self._renewed = now

    def run(self, stop: threading.Event) -> None:
        """Tick every CHECK seconds until ``stop`` is set, then leave the registry."""
        while True:
            self.tick()
            if stop.wait(CHECK):
                break
        self.leave()

    def leave(self) -> None:
        """Revoke the lease: the node's key goes now rather than at its expiry."""
        if self._lease is None:
            return
        try:
            self._etcd.revoke(self._lease)
        except EtcdError as exc:
            log.info("config follower: could not leave the registry (%s); its key expires "
                     "within %ds", exc, TTL)
        self._lease = None
