"""``rate_limiter`` (local policy) through a running gateway: exact across workers, headers,
Dakia's entry as it is."""
from __future__ import annotations

import socket
from typing import Any

import requests

from .harness import node, read_responses, wait_until

REQUEST = b"GET /limited HTTP/1.1\r\nhost: x\r\n\r\n"


def simultaneous(port: int, count: int) -> list[tuple[int, dict[bytes, bytes]]]:
    """``count`` requests on ``count`` connections, all connected before any is sent, and
    sent back to back before any response is read."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for s in socks:
            s.sendall(REQUEST)
        out = []
        for s in socks:
            [(response, _body)] = read_responses(s, 1)
            out.append((response.status_code, dict(response.headers)))
        return out
    finally:
        for s in socks:
            s.close()


def limited(config: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"interceptors": [{"name": "rate_limiter", "config": config, **more}]}


def test_two_workers_admit_exactly_the_capacity(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  workers=2, gateway=limited({"capacity": 10, "refill_rate": 1,
                                              "refill_interval": 3600000}))
    assert len({w["pid"] for w in gw.workers()}) == 2
    results = simultaneous(gw.port, 30)
    codes = [status for status, _ in results]
    assert (codes.count(200), codes.count(429)) == (10, 20)
    assert len(up.received) == 10
    remaining = sorted(int(h[b"ratelimit-remaining"]) for status, h in results if status == 200)
    assert remaining == list(range(10))          # each token taken once, by one request
    for status, headers in results:
        assert headers[b"ratelimit-limit"] == headers[b"x-ratelimit-limit"] == b"10"
        if status == 429:
            assert int(headers[b"retry-after"]) >= 1 and headers[b"ratelimit-remaining"] == b"0"
    # Both workers served some of them (their counts reach the control block each second).
    def counts() -> list[int] | None:
        served = [w["requests"] for w in gw.workers()]
        return served if len(served) == 2 and sum(served) >= 30 else None
    served = wait_until(counts, 5, "the workers' request counts")
    assert sum(served) == 30 and min(served) > 0, served


def test_dakias_entry_as_it_is_with_headers_and_scope(engine, upstreams, gateways):
    """Dakia's sample entry (5 tokens, 2 more every 12 s, no key: one bucket) on a filter."""
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "filters": [{"name": "api", "path": {"$starts_with": "/api"}}],
        "interceptors": [{"name": "rate_limiter", "enabled": True, "filter": "api",
                          "config": {"capacity": 5, "refill_rate": 2,
                                     "refill_interval": 12000}}]})
    with requests.Session() as client:
        seen = [client.get(gw.url + "/api/x", timeout=5) for _ in range(6)]
        assert [r.status_code for r in seen] == [200] * 5 + [429]
        assert [r.headers["ratelimit-remaining"] for r in seen] == ["4", "3", "2", "1", "0", "0"]
        assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["4", "3", "2", "1", "0",
                                                                       "0"]
        assert all(r.headers["ratelimit-limit"] == "5" for r in seen)
        assert 12 <= int(seen[0].headers["ratelimit-reset"]) <= 36
        rejected = seen[-1]
        assert 1 <= int(rejected.headers["retry-after"]) <= 12
        assert rejected.text == "429 Too Many Requests\n"
        assert len(up.received) == 5
        other = client.get(gw.url + "/other", timeout=5)       # not a limited route
        assert other.status_code == 200 and "ratelimit-limit" not in other.headers


def test_keys_by_header_through_the_gateway(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway=limited({"capacity": 2, "refill_rate": 1, "refill_interval": 60000,
                                   "key": "header:X-Tenant"}))

    def codes(tenant: str, count: int) -> list[int]:
        return [requests.get(gw.url + "/", headers={"X-Tenant": tenant}, timeout=5).status_code
                for _ in range(count)]
    assert codes("a", 3) == [200, 200, 429]
    assert codes("b", 3) == [200, 200, 429]


def test_consumer_key_after_key_auth(upstreams, gateways):
    """Each API key has its own bucket; a request without a key is answered 401 by
    key_auth before the limiter runs, and takes no token."""
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "interceptors": [
            {"name": "key_auth", "config": {"keys": [{"name": "ci", "key": "c" * 32},
                                                     {"name": "ops", "key": "o" * 32}]}},
            {"name": "rate_limiter", "config": {"capacity": 2, "refill_rate": 1,
                                                "refill_interval": 60000,
                                                "key": "consumer"}}]})

    def codes(key: str | None, count: int) -> list[int]:
        headers = {"X-API-Key": key} if key else {}
        return [requests.get(gw.url, headers=headers, timeout=5).status_code
                for _ in range(count)]
    assert codes(None, 3) == [401, 401, 401]
    assert codes("c" * 32, 3) == [200, 200, 429]
    assert codes("o" * 32, 3) == [200, 200, 429]
