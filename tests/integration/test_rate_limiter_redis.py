"""``rate_limiter`` with ``policy: redis`` against a real redis-server the tests start:
the script's semantics, one limit shared by separate gateways, failing open and closed."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any, Iterator

import pytest
import requests

from dakia_prefork.interceptors.ratelimit_redis import RedisBuckets
from dakia_prefork.shm.buckets import BucketLimit, take_token

from .harness import node, wait_until
from .redis_server import RedisServer
from .test_rate_limiter import simultaneous


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path)).start()
    yield server
    server.stop()


def redis_limited(url: str, on_failure: str = "open", **config: Any) -> dict[str, Any]:
    settings = {"capacity": 10, "refill_rate": 1, "refill_interval": 3600000,
                "policy": "redis", "redis": {"url": url, "on_failure": on_failure,
                                             "timeout": 0.2}}
    settings.update(config)
    return {"interceptors": [{"name": "rate_limiter", "config": settings}]}


def test_the_script_has_the_shared_memory_semantics(redis_server):
    """Same inputs, same answers: the Lua script against shm/buckets.py's pure step, on
    random request times, with integer milliseconds on both sides. (The times are made
    up, expiry runs on redis's real clock: each sequence takes far less than the second
    a key outlives its bucket's refill.)"""
    backend = RedisBuckets(redis_server.url, 1.0, "closed")
    rng = random.Random(7)
    for capacity, rate, interval in [(5, 2, 12000), (1, 1, 1), (10, 3, 250), (3, 5, 100)]:
        limit = BucketLimit(f"t/{capacity}/{rate}/{interval}", capacity, rate, interval)
        reference = BucketLimit("ref", capacity, rate, interval)
        reference.interval = interval                 # the pure step, in integer ms
        now = 1_700_000_000_000
        tokens, updated = capacity, now
        for _ in range(300):
            now += rng.choice([0, 1, interval // 3, interval - 1, interval, 2 * interval + 1])
            tokens, updated, _full_at, expected = take_token(tokens, updated, now, reference)
            got = backend.take(limit, "k", now_ms=now)
            assert got is not None
            assert (got.allowed, got.remaining) == (expected.allowed, expected.remaining)
            assert round(got.reset_seconds * 1000) == expected.reset_seconds
            assert round(got.retry_after_seconds * 1000) == expected.retry_after_seconds


def test_an_idle_key_expires_when_its_bucket_is_full_again(redis_server):
    backend = RedisBuckets(redis_server.url, 1.0, "closed")
    limit = BucketLimit("gw/0", 2, 1, 300)
    assert backend.take(limit, "ip:10.0.0.1").remaining == 1
    assert b"dakia:rl:gw/0:ip:10.0.0.1" in redis_server.command("KEYS", "*")
    ttl = int(redis_server.command("PTTL", "dakia:rl:gw/0:ip:10.0.0.1")[1:-2])
    assert 1000 < ttl <= 1300                 # full again in 300 ms, kept one second more
    wait_until(lambda: redis_server.command("KEYS", "*") == b"*0\r\n", 3, "the key to expire")
    assert backend.take(limit, "ip:10.0.0.1").remaining == 1       # full again, as before


def test_two_gateways_share_one_limit(engine, redis_server, upstreams, gateways):
    """Two masters (two machines, as far as they know), two workers each, one redis: 30
    simultaneous requests spread over both, exactly the capacity admitted in total."""
    up = upstreams(name="app")
    gws = [gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                    workers=2, gateway=redis_limited(redis_server.url))
           for _ in range(2)]
    results: list[list[tuple[int, dict[bytes, bytes]]]] = [[], []]
    barrier = threading.Barrier(2)

    def hit(index: int) -> None:
        barrier.wait()
        results[index] = simultaneous(gws[index].port, 15)
    threads = [threading.Thread(target=hit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = [status for batch in results for status, _ in batch]
    assert len(codes) == 30
    assert (codes.count(200), codes.count(429)) == (10, 20)
    assert len(up.received) == 10
    remaining = sorted(int(h[b"ratelimit-remaining"]) for batch in results
                       for status, h in batch if status == 200)
    assert remaining == list(range(10))
    rejected = [h for batch in results for status, h in batch if status == 429]
    assert all(h[b"retry-after"] and h[b"x-ratelimit-limit"] == b"10" for h in rejected)


def _error_lines(gw) -> list[str]:
    return [line for line in gw.log_text().splitlines() if "rate_limiter: redis" in line]


def test_redis_gone_fails_open_logged_once_then_recovers(redis_server, upstreams, gateways,
                                                         tmp_path):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                  gateway=redis_limited(redis_server.url, "open", capacity=2))
    with requests.Session() as client:
        assert [client.get(gw.url, timeout=5).status_code for _ in range(3)] == [200, 200, 429]
        redis_server.kill()
        passed = [client.get(gw.url, timeout=5) for _ in range(20)]
        assert [r.status_code for r in passed] == [200] * 20
        assert all("ratelimit-limit" not in r.headers for r in passed)
        lines = wait_until(lambda: _error_lines(gw), 5, "the failure to be logged")
        assert len(lines) == 1 and "unreachable" in lines[0] and "failing open" in lines[0]
        # Back on the same port, empty: after the hold-down the limit applies again.
        again = RedisServer(str(tmp_path))
        again.port = redis_server.port
        again.start()
        try:
            time.sleep(1.1)
            codes = [client.get(gw.url, timeout=5).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            wait_until(lambda: "reachable again" in gw.log_text(), 5, "the recovery log line")
        finally:
            again.stop()


def test_redis_gone_fails_closed_with_503(redis_server, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2,
                  gateway=redis_limited(redis_server.url, "closed"))
    assert requests.get(gw.url, timeout=5).status_code == 200
    redis_server.kill()
    refused = [requests.get(gw.url, timeout=5) for _ in range(10)]
    assert [r.status_code for r in refused] == [503] * 10
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert "rate limit cannot be checked" in refused[0].text
    assert len(up.received) == 1
    # At most one line per worker, however many requests failed.
    assert 1 <= len(wait_until(lambda: _error_lines(gw), 5, "the failure log")) <= 2


def test_a_hung_redis_costs_the_timeout_not_more(redis_server, upstreams, gateways):
    """A redis that accepts but never answers (SIGSTOP): the request waits ``timeout``
    (0.2 s) once, then redis is left alone for a second; other connections keep being
    served meanwhile (gevent sockets)."""
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                  gateway=redis_limited(redis_server.url, "open"))
    assert requests.get(gw.url, timeout=5).status_code == 200
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert requests.get(gw.url, timeout=5).status_code == 200
        first = time.monotonic() - started
        started = time.monotonic()
        assert [requests.get(gw.url, timeout=5).status_code for _ in range(5)] == [200] * 5
        held_down = time.monotonic() - started
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert 0.15 <= first < 1.0, first
    assert held_down < 0.5, held_down
