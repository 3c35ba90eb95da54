"""Reaching upstream nodes: host names resolved with a TTL, addresses in turn, the pool."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from dakia_prefork.http.upstream import (Node, Resolver, UpstreamConnection, UpstreamPool,
                                         open_connection, tls_for)


class FakeDNS:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls = 0
        self.fail = False

    def __call__(self, host: str, port: int, type: int = 0):
        self.calls += 1
        if self.fail:
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        out = []
        for address in self.answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if ":" in address else (address, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))     # duplicates dropped
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_looked_up_once_per_ttl_and_refreshed_in_the_background():
    dns = FakeDNS({"api.internal": ["10.0.0.1"]})
    clock = Clock()
    spawned: list = []
    resolver = Resolver(getaddrinfo=dns, spawn=lambda fn, *args: spawned.append((fn, args)),
                        clock=clock)
    assert resolver.resolve("api.internal", 80, 30) == [(socket.AF_INET, ("10.0.0.1", 80))]
    assert dns.calls == 1 and spawned == []        # the first lookup is made in place
    clock.now += 29
    resolver.resolve("api.internal", 80, 30)
    assert dns.calls == 1
    clock.now += 2                                 # stale: answered, refreshed aside
    dns.answers["api.internal"] = ["10.0.0.2"]
    assert resolver.resolve("api.internal", 80, 30)[0][1][0] == "10.0.0.1"
    assert len(spawned) == 1
    resolver.resolve("api.internal", 80, 30)
    assert len(spawned) == 1                       # one refresh at a time
    fn, args = spawned.pop()
    fn(*args)
    assert resolver.resolve("api.internal", 80, 30)[0][1][0] == "10.0.0.2"
    assert dns.calls == 2


def test_every_address_is_used_in_turn():
    dns = FakeDNS({"multi": ["10.0.0.1", "10.0.0.2", "fd00::3"]})
    resolver = Resolver(getaddrinfo=dns)
    firsts = [resolver.resolve("multi", 80, 30)[0][1][0] for _ in range(6)]
    assert firsts == ["10.0.0.1", "10.0.0.2", "fd00::3"] * 2
    assert [a[1][0] for a in resolver.resolve("multi", 80, 30)] == \
        ["10.0.0.1", "10.0.0.2", "fd00::3"]


def test_a_failed_refresh_keeps_the_known_addresses():
    dns = FakeDNS({"api": ["10.0.0.1"]})
    clock = Clock()
    resolver = Resolver(getaddrinfo=dns, clock=clock)       # no spawn: refresh in place
    resolver.resolve("api", 80, 30)
    dns.fail = True
    clock.now += 31
    assert resolver.resolve("api", 80, 30)[0][1][0] == "10.0.0.1"
    clock.now += 1
    resolver.resolve("api", 80, 30)
    assert dns.calls == 2                          # retried after RETRY_AFTER_FAILURE, not now
    clock.now += Resolver.RETRY_AFTER_FAILURE
    dns.fail = False
    resolver.resolve("api", 80, 30)
    assert dns.calls == 3


def test_a_name_that_never_resolved_raises():
    dns = FakeDNS({})
    dns.fail = True
    resolver = Resolver(getaddrinfo=dns)
    with pytest.raises(socket.gaierror):
        resolver.resolve("nowhere", 80, 30)


def _listener(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.bind((host, 0))
    sock.listen(8)
    return sock


def test_open_connection_falls_over_to_the_next_address():
    listener = _listener()
    port = listener.getsockname()[1]
    with socket.socket() as probe:                 # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    answers = [(socket.AF_INET, ("127.0.0.1", dead)), (socket.AF_INET, ("127.0.0.1", port))]

    class Fixed:
        def resolve(self, host, port, ttl):
            return answers

    node = Node(("tcp", "app.internal", port))
    assert node.named
    sock = open_connection(node, 2.0, Fixed())      # type: ignore[arg-type]
    assert sock.getpeername()[1] == port
    sock.close()
    listener.close()


def test_ipv6_literal_nodes_connect_directly():
    listener = _listener("::1")
    node = Node(("tcp", "::1", listener.getsockname()[1]))
    assert node.label == f"[::1]:{listener.getsockname()[1]}" and not node.named
    sock = open_connection(node, 2.0, None)
    assert sock.family == socket.AF_INET6
    sock.close()
    listener.close()


def test_tls_nodes_are_pooled_apart_from_plain_ones(tmp_path):
    from tests.tlsutil import make_pki
    pki = make_pki(str(tmp_path))
    address = ("tcp", "localhost", 443)
    plain = Node(address)
    secure = Node(address, tls=tls_for(address, None, True, pki.ca_file, None, None))
    other_name = Node(address, tls=tls_for(address, "x.example", True, pki.ca_file, None,
                                           None))
    assert plain.pool_key == address
    assert len({plain.pool_key, secure.pool_key, other_name.pool_key}) == 3
    assert secure.tls is not None and secure.tls.server_hostname == "localhost"
    again = tls_for(address, None, True, pki.ca_file, None, None)
    assert again.context is secure.tls.context      # contexts are shared, not rebuilt
    unverified = tls_for(address, None, False, None, None, None)
    assert unverified.context.verify_mode.name == "CERT_NONE"


def test_the_pool_sweeps_connections_idle_past_their_timeout():
    pool = UpstreamPool(4)
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    pool.put_idle(UpstreamConnection(a, "k"), idle_timeout=0.05)
    pool.put_idle(UpstreamConnection(c, "k"), idle_timeout=10)
    assert pool.sweep(time.monotonic() + 1) == 1
    assert a.fileno() == -1 and c.fileno() != -1
    assert pool.take_idle("k", 10).sock is c
    for s in (b, c, d):
        s.close()


def test_a_pooled_connection_closed_by_the_peer_is_not_reused():
    pool = UpstreamPool(4)
    a, b = socket.socketpair()
    conn = UpstreamConnection(a, "k")
    pool.put_idle(conn)
    conn.idle_since -= 5                            # old enough to be probed
    b.close()
    assert pool.take_idle("k", 60) is None


def test_first_lookups_wait_for_the_one_in_flight():
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow_dns(host, port, type=0):
        calls.append(host)
        started.set()
        release.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.9", port))]

    resolver = Resolver(getaddrinfo=slow_dns)
    results = []
    first = threading.Thread(target=lambda: results.append(resolver.resolve("n", 1, 30)))
    first.start()
    started.wait(5)
    second = threading.Thread(target=lambda: results.append(resolver.resolve("n", 1, 30)))
    second.start()
    time.sleep(0.05)
    release.set()
    first.join(5)
    second.join(5)
    assert calls == ["n"] and len(results) == 2
