"""``rate_limiter`` without sockets: its config, keys, answers and headers, on a real
shared-memory bucket table (the redis policy is tested against a real server in
tests/integration/test_rate_limiter_redis.py)."""
from __future__ import annotations

import copy
import os
from typing import Any, Iterator

import pytest
import yaml

from dakia_prefork.config.errors import ConfigError
from dakia_prefork.config.validate import validate
from dakia_prefork.http.events import RequestHead
from dakia_prefork.message.request import Request
from dakia_prefork.interceptors import Chain, build_chain
from dakia_prefork.interceptors.ratelimit_redis import bucket_key, redact
from dakia_prefork.interceptors.resources import Resources
from dakia_prefork.master.checks import runtime_errors
from dakia_prefork.shm import Segment
from dakia_prefork.shm.buckets import BucketLimit, BucketTable
from dakia_prefork.shm.segment import segment_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def resources(tmp_path) -> Iterator[Resources]:
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "buckets"),
                  BucketTable.size_for(1024), create=True)
    BucketTable.format(seg)
    yield Resources(buckets=BucketTable(seg))
    seg.unlink()
    seg.close()


def entry(config: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": "rate_limiter", "enabled": True, "filter": None, "config": config, **more}


def limiter(resources: Resources, *entries: dict[str, Any]) -> Chain:
    built = build_chain({"name": "gw", "interceptors": list(entries)}, {}, "gateways[0]",
                        resources)
    assert built is not None
    return built


def request(peer: str = "192.0.2.1", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    head = RequestHead(b"GET", b"/", b"1.1", raw, None, False, True, False)
    return Request(head, "example.com", "http", peer)


def send(chain: Chain, req: Request | None = None, route: str = "app",
         consumer: str | None = None) -> tuple[int, dict[str, str]]:
    """One request through the chain: (status, response headers) as the client sees them."""
    run = chain.start(req or request(), route)
    run.ctx.consumer = consumer
    reply = run.request_phases()
    if reply is None:
        response = run.upstream_response(200, b"OK", [(b"x-up", b"1")], True)
    else:
        response = run.local_response(reply.status, reply.body, reply.headers)
    return response.status, {n.decode(): v.decode() for n, v in response.headers.raw}


def statuses(chain: Chain, count: int, **kwargs: Any) -> list[int]:
    return [send(chain, **kwargs)[0] for _ in range(count)]


CONFIG = {"capacity": 3, "refill_rate": 1, "refill_interval": 60000}


# -- config -------------------------------------------------------------------------------
def config_with(*interceptors: dict[str, Any]) -> dict[str, Any]:
    return {"state_dir": "/tmp/x", "gateways": [{
        "name": "gw", "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
        "upstreams": [{"name": "app", "default": True,
                       "upstream_nodes": [{"address": {"host": "127.0.0.1", "port": 1}}]}],
        "interceptors": list(interceptors)}]}


def test_dakias_entry_passes_as_it_is() -> None:
    sample = yaml.safe_load(open(os.path.join(ROOT, "tests/unit/fixtures/"
                                              "dakia-config.sample.yaml")).read())
    [dakia] = [i for i in sample["gateways"][0]["interceptors"] if i["name"] == "rate_limiter"]
    assert dakia["config"] == {"capacity": 5, "refill_rate": 2, "refill_interval": 12000}
    config, _ = validate(config_with(dakia), base_dir="/")
    assert runtime_errors(config) == []


P = "gateways[0].interceptors[0].config"


@pytest.mark.parametrize("config, expected", [
    ({"capacity": 5}, [f"{P}.refill_interval: required key is missing",
                       f"{P}.refill_rate: required key is missing"]),
    (dict(CONFIG, capacity=0), [f"{P}.capacity: 0 is less than the minimum of 1"]),
    (dict(CONFIG, key="cookie"), [f"{P}.key: one of global, ip, route, consumer or "
                                  "header:<name>, got 'cookie'"]),
    (dict(CONFIG, key="header:connection"), [
        f"{P}.key: header 'connection' is hop-by-hop or framing: the gateway sets it"]),
    (dict(CONFIG, policy="redis"), [
        f"{P}.redis: policy redis needs redis: {{url: redis://host:port/db}}"]),
    (dict(CONFIG, policy="redis", redis={"url": "http://:s3cret@h:6379"}), [
        f"{P}.redis.url: 'http://:***@h:6379': the scheme must be redis://, rediss:// or "
        "unix://"]),
    (dict(CONFIG, policy="redis", redis={"url": "redis://h:99999"}), [
        f"{P}.redis.url: 'redis://h:99999' is not a URL: Port out of range 0-65535"]),
    (dict(CONFIG, policy="redis", redis={"url": "unix://"}), [
        f"{P}.redis.url: unix:// needs a socket path"]),
    (dict(CONFIG, policy="redis", redis={"url": "redis://h", "on_failure": "maybe"}), [
        f"{P}.redis.on_failure: 'maybe' is not one of ['open', 'closed']"]),
])
def test_config_errors_name_the_key(config: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(config_with({"name": "rate_limiter", "config": config}), base_dir="/")
    assert caught.value.errors == expected


def test_a_valid_redis_entry_builds_without_touching_redis() -> None:
    redis_entry = {"name": "rate_limiter", "config": dict(
        CONFIG, key="header:X-Tenant", policy="redis",
        redis={"url": "redis://:pw@10.255.255.1:6379/2", "on_failure": "closed",
               "timeout": 0.1})}
    config, _ = validate(config_with(redis_entry), base_dir="/")
    assert runtime_errors(config) == []          # as the master checks it: no connection


def test_redact_and_bucket_keys() -> None:
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"
    limit = BucketLimit("gw/2", 1, 1, 1)
    assert bucket_key(limit, "ip:10.0.0.1") == "dakia:rl:gw/2:ip:10.0.0.1"
    long_key = bucket_key(limit, "h:" + "x" * 500)
    assert long_key.startswith("dakia:rl:gw/2:sha256:") and len(long_key) < 100


# -- answers and headers ------------------------------------------------------------------
def test_a_full_bucket_admits_capacity_then_429_with_retry_after(resources) -> None:
    chain = limiter(resources, entry(CONFIG))
    seen = [send(chain) for _ in range(4)]
    assert [status for status, _ in seen] == [200, 200, 200, 429]
    assert [h["ratelimit-remaining"] for _, h in seen] == ["2", "1", "0", "0"]
    for _, headers in seen:
        assert headers["ratelimit-limit"] == headers["x-ratelimit-limit"] == "3"
        assert headers["ratelimit-remaining"] == headers["x-ratelimit-remaining"]
        assert headers["ratelimit-reset"] == headers["x-ratelimit-reset"]
        assert 60 <= int(headers["ratelimit-reset"]) <= 180
    status, headers = seen[-1]
    assert 59 <= int(headers["retry-after"]) <= 60
    assert "retry-after" not in seen[0][1] and seen[0][1]["x-up"] == "1"


def test_the_upstreams_own_headers_are_replaced(resources) -> None:
    chain = limiter(resources, entry(CONFIG))
    run = chain.start(request(), "app")
    assert run.request_phases() is None
    response = run.upstream_response(200, b"OK", [(b"ratelimit-limit", b"1000"),
                                                  (b"x-ratelimit-remaining", b"999")], True)
    names = [name for name, _ in response.headers.raw]
    assert sorted(names) == sorted([b"ratelimit-limit", b"ratelimit-remaining",
                                    b"ratelimit-reset", b"x-ratelimit-limit",
                                    b"x-ratelimit-remaining", b"x-ratelimit-reset"])
    assert response.headers.get("ratelimit-limit") == "3"


def test_the_headers_are_those_of_the_most_restrictive_limiter(resources) -> None:
    chain = limiter(resources, entry({"capacity": 100, "refill_rate": 1,
                                      "refill_interval": 1000}),
                    entry(dict(CONFIG, key="ip")),
                    entry({"capacity": 50, "refill_rate": 1, "refill_interval": 1000}))
    status, headers = send(chain)
    assert (status, headers["ratelimit-limit"], headers["ratelimit-remaining"]) == (200, "3", "2")
    assert list(headers).count("ratelimit-limit") == 1


# -- keys ---------------------------------------------------------------------------------
def test_global_is_the_default_key_as_in_dakia(resources) -> None:
    chain = limiter(resources, entry(CONFIG))
    assert statuses(chain, 2, req=request("10.0.0.1")) == [200, 200]
    assert statuses(chain, 2, req=request("10.0.0.2")) == [200, 429]


def test_ip_key(resources) -> None:
    chain = limiter(resources, entry(dict(CONFIG, key="ip")))
    assert statuses(chain, 4, req=request("10.0.0.1")) == [200, 200, 200, 429]
    assert statuses(chain, 1, req=request("10.0.0.2")) == [200]
    assert statuses(chain, 1, req=request("2001:db8::1")) == [200]


def test_route_key(resources) -> None:
    chain = limiter(resources, entry(dict(CONFIG, key="route")))
    assert statuses(chain, 4, route="a") == [200, 200, 200, 429]
    assert statuses(chain, 1, route="b") == [200]


def test_consumer_key_and_its_fallback_to_the_client_address(resources) -> None:
    chain = limiter(resources, entry(dict(CONFIG, key="consumer")))
    assert statuses(chain, 4, consumer="alice") == [200, 200, 200, 429]
    assert statuses(chain, 1, consumer="bob") == [200]
    # No identity: the client address's bucket, which is not the consumer of that name.
    assert statuses(chain, 3, req=request("10.0.0.9"), consumer="10.0.0.9") == [200] * 3
    assert statuses(chain, 4, req=request("10.0.0.9")) == [200, 200, 200, 429]


def test_header_key_and_its_fallback(resources) -> None:
    chain = limiter(resources, entry(dict(CONFIG, key="header:X-Tenant")))
    assert statuses(chain, 4, req=request(headers={"X-Tenant": "t1"})) == [200, 200, 200, 429]
    assert statuses(chain, 1, req=request(headers={"X-Tenant": "t2"})) == [200]
    assert statuses(chain, 4, req=request("10.0.0.3")) == [200, 200, 200, 429]


def test_each_entry_has_its_own_buckets_and_a_reload_keeps_them(resources) -> None:
    gateway = {"name": "gw", "interceptors": [entry(CONFIG), entry(CONFIG)]}
    chain = build_chain(gateway, {}, "gateways[0]", resources)
    status, headers = send(chain)
    assert headers["ratelimit-remaining"] == "2"      # both took one; each has 2 left
    reloaded = build_chain(copy.deepcopy(gateway), {}, "gateways[0]", resources)
    assert send(reloaded)[1]["ratelimit-remaining"] == "1"


def test_without_a_worker_table_the_request_fails_rather_than_passes() -> None:
    chain = build_chain({"name": "gw", "interceptors": [entry(CONFIG)]}, {}, "g")
    assert send(chain)[0] == 500


def test_a_consumer_key_without_auth_before_it_gets_a_notice() -> None:
    consumer = {"name": "rate_limiter", "config": dict(CONFIG, key="consumer")}
    auth = {"name": "key_auth", "config": {"keys": [{"name": "ci", "key": "k" * 32}]}}
    _, notices = validate(config_with(consumer, auth, consumer), base_dir="/")
    assert notices == ["gateways[0].interceptors[0].config.key: no auth interceptor runs "
                       "before this limiter, so no request has a consumer yet: each is "
                       "limited by its client address (list basic_auth or key_auth first)"]
    _, notices = validate(config_with(auth, consumer), base_dir="/")
    assert notices == []
