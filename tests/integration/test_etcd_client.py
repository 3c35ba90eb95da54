"""fleet/etcd.py against a real etcd: the read, the compare-and-put, the watch and its
compaction answer, endpoint failover, authentication, and what an unreachable cluster
raises."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from dakia_prefork.config.model import EtcdSettings
from dakia_prefork.fleet.etcd import Compacted, Etcd, EtcdError, EtcdUnreachable

from .etcd_server import EtcdServer
from .harness import free_port

KEY = "/test/key"


def settings(*endpoints: str, username: str | None = None,
             password: str | None = None) -> EtcdSettings:
    return EtcdSettings(endpoints, KEY, username, password, None, None, None, 2.0)


@pytest.fixture
def etcd(tmp_path) -> Iterator[EtcdServer]:
    server = EtcdServer(str(tmp_path))
    try:
        yield server.start()
    finally:
        server.stop()


def test_read_and_compare_and_put(etcd) -> None:
    client = Etcd(settings(etcd.url))
    try:
        absent = client.get()
        assert absent.value is None and absent.mod_revision == 0 and absent.revision >= 1
        assert client.put(b"one", 0) == (True, absent.revision + 1)        # only if absent
        created = client.get()
        assert (created.value, created.mod_revision) == (b"one", absent.revision + 1)
        assert client.put(b"two", 0) == (False, created.mod_revision)      # not absent now
        assert client.put(b"two", created.mod_revision - 1) == (False, created.mod_revision)
        done, revision = client.put(b"two", created.mod_revision)
        assert done and etcd.get(KEY) == (b"two", revision)
        done, forced = client.put(b"three", None)                           # unconditional
        assert done and forced == revision + 1 and etcd.get(KEY)[0] == b"three"
    finally:
        client.close()


def test_the_watch_gives_each_change_and_says_when_its_start_was_compacted(etcd) -> None:
    client = Etcd(settings(etcd.url))
    try:
        start = client.get().revision + 1
        first = etcd.put(KEY, "a")
        etcd.put(KEY, "b")
        etcd.delete(KEY)
        events = []
        for event in client.watch(start, idle=1.0):     # ends after 1 s without news
            events.append((event.value, event.mod_revision))
        assert events[:2] == [(b"a", first), (b"b", first + 1)]
        assert events[2][0] is None                       # the deletion
        etcd.put(KEY, "c")
        etcd.compact(etcd.get(KEY)[1])
        with pytest.raises(Compacted, match="compacted"):
            for _event in client.watch(start, idle=1.0):
                pass
    finally:
        client.close()


def test_leases_keys_under_a_prefix_and_their_revocation(etcd) -> None:
    client = Etcd(settings(etcd.url))
    try:
        lease = client.grant(30)
        client.put_key(KEY + "/nodes/b", b"B", lease)
        client.put_key(KEY + "/nodes/a", b"A", lease)
        client.put_key(KEY + "/nodesx", b"not under the prefix")
        client.put_key(KEY, b"the key itself")
        assert client.range_prefix(KEY + "/nodes/", 10) == [(KEY + "/nodes/a", b"A"),
                                                            (KEY + "/nodes/b", b"B")]
        assert client.range_prefix(KEY + "/nodes/", 1) == [(KEY + "/nodes/a", b"A")]
        assert client.keep_alive(lease) is True
        client.revoke(lease)                    # its keys go with it, at once
        assert client.range_prefix(KEY + "/nodes/", 10) == []
        assert client.keep_alive(lease) is False
        assert etcd.get(KEY)[0] == b"the key itself"
        with pytest.raises(EtcdError):
            client.put_key(KEY + "/nodes/c", b"C", lease)     # a revoked lease is refused
    finally:
        client.close()


def test_endpoints_are_tried_in_turn_and_the_one_that_answered_goes_first(etcd) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = Etcd(settings(dead, etcd.url))
    try:
        assert client.endpoint == dead
        client.put(b"x", None)
        assert client.endpoint == etcd.url
        assert client.get().value == b"x"
    finally:
        client.close()


def test_an_unreachable_cluster_is_named_with_each_endpoint(tmp_path) -> None:
    ports = [free_port(), free_port()]
    client = Etcd(settings(*(f"http://127.0.0.1:{port}" for port in ports)))
    started = time.monotonic()
    try:
        with pytest.raises(EtcdUnreachable) as info:
            client.get()
    finally:
        client.close()
    assert time.monotonic() - started < 5.0               # refused at once, no hanging
    for port in ports:
        assert f"http://127.0.0.1:{port}: connection refused" in str(info.value)


def test_authentication(etcd) -> None:
    etcd.put(KEY, "before auth")
    etcd.enable_auth("s3cret")
    client = Etcd(settings(etcd.url, username="root", password="s3cret"))
    try:
        assert client.get().value == b"before auth"
        done, _revision = client.put(b"with auth", None)
        assert done
        assert [e.value for e in _first(client.watch(client.get().revision, idle=1.0))] \
            == [b"with auth"]
    finally:
        client.close()
    for who in (settings(etcd.url, username="root", password="wrong"), settings(etcd.url)):
        refused = Etcd(who)
        try:
            with pytest.raises(EtcdError) as info:
                refused.get()
            assert not isinstance(info.value, EtcdUnreachable)
        finally:
            refused.close()


def _first(events: Iterator) -> list:
    for event in events:
        return [event]
    return []


def test_tls_with_a_client_certificate(tmp_path) -> None:
    from tests.tlsutil import make_pki
    pki = make_pki(str(tmp_path), server_is_client=True)
    server = EtcdServer(str(tmp_path), tls=(pki.ca_file, pki.server_cert, pki.server_key),
                        client=(pki.client_cert, pki.client_key))
    server.start()
    try:
        secure = Etcd(EtcdSettings((server.url,), KEY, None, None, pki.ca_file,
                                   pki.client_cert, pki.client_key, 2.0))
        try:
            assert secure.put(b"over tls", 0)[0]
            assert secure.get().value == b"over tls"
        finally:
            secure.close()
        for who in (EtcdSettings((server.url,), KEY, None, None, pki.ca_file, None, None, 2.0),
                    EtcdSettings((server.url,), KEY, None, None, pki.other_ca_file,
                                 pki.client_cert, pki.client_key, 2.0)):
            refused = Etcd(who)
            try:
                with pytest.raises(EtcdError):
                    refused.get()
            finally:
                refused.close()
    finally:
        server.stop()


def test_an_expired_token_is_renewed(tmp_path) -> None:
    server = EtcdServer(str(tmp_path), extra=("--auth-token-ttl", "1"))
    server.start()
    try:
        server.enable_auth("s3cret")
        client = Etcd(settings(server.url, username="root", password="s3cret"))
        try:
            assert client.put(b"one", None)[0]
            token = client._token
            # etcd forgets a simple token after its TTL without use (checked each second).
            time.sleep(3.0)
            assert client.get().value == b"one"
            assert client._token is not None and client._token != token
            assert [e.value for e in _first(client.watch(client.get().mod_revision, 1.0))] \
                == [b"one"]
        finally:
            client.close()
    finally:
        server.stop()
