"""The fleet's registry (fleet/registry.py) on an in-memory etcd: registering, putting a
changed record, renewing the lease, starting over when it expired or etcd was away,
leaving; and reading records back under bounds. A real etcd is in
tests/integration/test_fleet.py."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from dakia_prefork.config.model import EtcdSettings
from dakia_prefork.fleet.etcd import EtcdError, EtcdUnreachable
from dakia_prefork.fleet.registry import (BEAT, MAX_RECORD, TTL, Registrar, list_nodes,
                                          nodes_prefix, parse_record)

SETTINGS = EtcdSettings(endpoints=("http://127.0.0.1:2379",), key="/dakia/config",
                        username=None, password=None, ca_file=None, cert_file=None,
                        key_file=None, timeout=2.0)


class MemoryEtcd:
    """Leases and keys in dicts; ``down`` makes every call fail as an unreachable etcd."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[bytes, int | None]] = {}
        self.leases: dict[int, int] = {}
        self.next_lease = 100
        self.down = False
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise EtcdUnreachable("http://127.0.0.1:2379: connection refused")

    def grant(self, ttl: int) -> int:
        self._call("grant")
        self.next_lease += 1
        self.leases[self.next_lease] = ttl
        return self.next_lease

    def keep_alive(self, lease: int) -> bool:
        self._call("keep_alive")
        return lease in self.leases

    def revoke(self, lease: int) -> None:
        self._call("revoke")
        self.expire(lease)

    def expire(self, lease: int) -> None:
        self.leases.pop(lease, None)
        self.keys = {k: v for k, v in self.keys.items() if v[1] != lease}

    def put_key(self, key: str, value: bytes, lease: int | None = None) -> None:
        self._call("put")
        if lease is not None and lease not in self.leases:
            raise EtcdError("etcdserver: requested lease not found")
        self.keys[key] = (value, lease)

    def range_prefix(self, prefix: str, limit: int) -> list[tuple[str, bytes]]:
        self._call("range")
        return sorted((k, v) for k, (v, _) in self.keys.items() if k.startswith(prefix))[:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _record(version: int = 3, revision: int | None = 17) -> dict[str, Any]:
    return {"host": "edge-1", "master_pid": 4121, "version": version, "revision": revision,
            "follower": "following", "admin": "127.0.0.1:9901"}


def _registrar(etcd: MemoryEtcd, served: list[dict[str, Any]], clock: Clock) -> Registrar:
    return Registrar(etcd, SETTINGS, "edge-1-4121", lambda: served[0], clock)  # type: ignore[arg-type]


def test_a_node_registers_with_a_lease_and_puts_each_change_at_once() -> None:
    etcd, clock, served = MemoryEtcd(), Clock(), [_record()]
    registrar = _registrar(etcd, served, clock)
    assert registrar.key == "/dakia/config/nodes/edge-1-4121"
    registrar.tick()
    value, lease = etcd.keys[registrar.key]
    assert lease in etcd.leases and etcd.leases[lease] == TTL
    first = json.loads(value)
    assert {k: first[k] for k in _record()} == _record() and first["since"] > 0
    registrar.tick()                                  # nothing changed, nothing due
    assert etcd.calls == ["grant", "put"]
    served[0] = _record(version=4, revision=18)       # the master published a new version
    clock.now += 0.5
    registrar.tick()
    assert etcd.calls == ["grant", "put", "put"]
    assert json.loads(etcd.keys[registrar.key][0])["revision"] == 18


def test_the_lease_is_renewed_every_beat_and_a_lost_one_is_granted_anew() -> None:
    etcd, clock, served = MemoryEtcd(), Clock(), [_record()]
    registrar = _registrar(etcd, served, clock)
    registrar.tick()
    clock.now += BEAT - 0.1
    registrar.tick()
    assert "keep_alive" not in etcd.calls
    clock.now += 0.2
    registrar.tick()
    assert etcd.calls[-1] == "keep_alive"
    # etcd lost the lease (it was away longer than the TTL): the key is gone, then back.
    lease = etcd.keys[registrar.key][1]
    assert lease is not None
    etcd.expire(lease)
    assert registrar.key not in etcd.keys
    clock.now += BEAT
    registrar.tick()
    assert etcd.calls[-3:] == ["keep_alive", "grant", "put"]
    assert registrar.key in etcd.keys


def test_etcd_away_is_logged_once_and_the_node_registers_when_it_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    etcd, clock, served = MemoryEtcd(), Clock(), [_record()]
    registrar = _registrar(etcd, served, clock)
    etcd.down = True
    with caplog.at_level(logging.INFO, logger="dakia.fleet"):
        for _ in range(3):
            registrar.tick()
            clock.now += 1
        etcd.down = False
        registrar.tick()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot register this node" in warnings[0].getMessage()
    assert "registered in etcd again" in caplog.records[-1].getMessage()
    assert registrar.key in etcd.keys


def test_leaving_revokes_the_lease_so_the_key_goes_at_once() -> None:
    etcd, clock, served = MemoryEtcd(), Clock(), [_record()]
    registrar = _registrar(etcd, served, clock)
    registrar.tick()
    registrar.leave()
    assert etcd.keys == {} and etcd.calls[-1] == "revoke"
    registrar.leave()                                 # twice: nothing more to do
    assert etcd.calls.count("revoke") == 1


def test_records_read_back_are_checked_and_bounded() -> None:
    etcd = MemoryEtcd()
    prefix = nodes_prefix(SETTINGS.key)
    good = {**_record(), "since": 1.5}
    etcd.keys[prefix + "b-2"] = (json.dumps(good).encode(), None)
    etcd.keys[prefix + "a-1"] = (json.dumps({**good, "revision": None}).encode(), None)
    for name, value in [("bad-json", b"{"), ("list", b"[1]"),
                        ("wrong-type", json.dumps({**good, "version": "3"}).encode()),
                        ("bool", json.dumps({**good, "master_pid": True}).encode()),
                        ("missing", json.dumps({"host": "x"}).encode()),
                        ("huge", json.dumps({**good, "host": "x" * MAX_RECORD}).encode())]:
        etcd.keys[prefix + name] = (value, None)
    etcd.keys["/dakia/config"] = (b"{}", None)         # the document itself: not a node
    nodes = list_nodes(etcd, SETTINGS.key)            # type: ignore[arg-type]
    assert [n["node"] for n in nodes] == ["a-1", "b-2"]
    assert nodes[1] == {"node": "b-2", **good}
    assert parse_record("x", json.dumps({**good, "host": "<b>" * 10}).encode())["host"] \
        == "<b>" * 10                                  # kept as text; the page escapes it
