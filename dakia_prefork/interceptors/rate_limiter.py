"""``rate_limiter``: token buckets, exact across workers (shared memory) or across machines (redis).

::

    config:
      capacity: 100              # the bucket's size: the burst a key may send at once
      refill_rate: 10            # tokens added every refill_interval...
      refill_interval: 1000      # ...milliseconds (Dakia's three keys, as Dakia reads them)
      key: ip                    # global (the default, as Dakia) | ip | route | consumer
                                 # | "header:<name>"
      policy: local              # local: this machine's shared memory | redis: cluster-wide
      redis: {url: "redis://127.0.0.1:6379/0", on_failure: open, timeout: 0.25}

Semantics (Dakia's): a bucket starts full; every request takes one token or is refused;
``refill_rate`` tokens come back every ``refill_interval`` ms, in whole steps, up to
``capacity``. So ``capacity`` requests may arrive at once, then ``refill_rate`` per
``refill_interval`` on average.

The key says whose bucket a request takes from:

- ``global``: one bucket for every request this interceptor applies to;
- ``ip``: one per client address (``remote_addr``: the TCP peer, or the client a PROXY
  header or the gateway's ``real_ip`` names, never an untrusted ``X-Forwarded-For``; every
  unix-socket client shares the bucket of the empty address);
- ``route``: one per upstream the router picked (``ctx.route``);
- ``consumer``: one per authenticated identity (``ctx.consumer``, set by ``basic_auth``,
  ``key_auth``...). A request with none (the limiter runs before the auth interceptor, or
  the route has none) takes from its client address's bucket instead, as Kong does;
- ``header:<name>``: one per value of that request header; without the header, the client
  address's bucket.

Buckets of fallback addresses are kept apart from consumers and header values (a consumer
named ``10.0.0.1`` is not the client ``10.0.0.1``).

When. The token is taken in ``request_filter``, in config order like every interceptor:
after an auth interceptor listed before it (``key: consumer`` needs that: unauthenticated
requests are answered 401 and take no token), before one listed after it (an ``ip`` limit
placed first also limits password guessing).

Answers. A refused request gets 429 with ``Retry-After`` (whole seconds until the next
token, at least 1). Every response of a request the limiter ran for, the upstream's and the
gateway's own (the 429 too), carries ``RateLimit-Limit`` (capacity), ``RateLimit-Remaining``
(tokens left) and ``RateLimit-Reset`` (whole seconds until the bucket is full again), and the
same three as ``X-RateLimit-*``; they replace any the upstream sent. With several limiters on
one request, the headers are those of the one with the fewest tokens left.

Policies. ``local`` uses the worker's shared-memory table (``shm/buckets.py``): every worker
of this master takes from the same bucket, under a per-bucket lock, so N workers admit the
capacity, not N times it. The table is bounded; buckets that are full again are evicted
first, which changes no answer. ``redis`` keeps the bucket in redis (ratelimit_redis.py)
so that every gateway sharing that redis shares the limit; see there for what happens when
redis cannot be reached.

Identity. A bucket belongs to ``<gateway name>/<index of this entry>/<key>``: a reload that
changes the numbers keeps the buckets (tokens above a lowered capacity are dropped), one
that moves the entry in the list starts it with full buckets.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..message.heads import Headers
from ..shm.buckets import BucketLimit, BucketTable, TakeResult
from .base import Interceptor, Problem, Problems, register
from .context import RATE_LIMITED, Context, Reply
from .headers import header_name
from .resources import Resources

KEYS = ("global", "ip", "route", "consumer")
_VAR = "rate_limiter"
_TOO_MANY = b"429 Too Many Requests\n"
_LIMIT = b"ratelimit-limit"
_REMAINING = b"ratelimit-remaining"
_RESET = b"ratelimit-reset"
_X_REMAINING = b"x-" + _REMAINING
_X_RESET = b"x-" + _RESET
_HEADER_NAMES = frozenset(prefix + name for prefix in (b"", b"x-")
                          for name in (_LIMIT, _REMAINING, _RESET))

KeyOf = Callable[[Context], str]
AUTH_INTERCEPTORS = frozenset({"basic_auth", "key_auth", "jwt_auth"})


def parse_key(key: Any) -> tuple[str, bytes | None]:
    """``(kind, header name or None)`` of a ``key`` setting; ValueError if it is none."""
    if key in KEYS:
        return key, None
    if isinstance(key, str) and key.startswith("header:"):
        return "header", header_name(key[len("header:"):])
    raise ValueError(f"{key!r} is not a key: {', '.join(KEYS)} or 'header:<name>'")


def key_function(kind: str, header: bytes | None) -> KeyOf:
    """How a request's bucket key is computed, chosen once per config version."""
    if kind == "global":
        return lambda ctx: ""
    if kind == "ip":
        return lambda ctx: ctx.request.remote_addr
    if kind == "route":
        return lambda ctx: ctx.route
    if kind == "consumer":
        def consumer(ctx: Context) -> str:
            who = ctx.consumer
            return "c:" + who if who is not None else "ip:" + ctx.request.remote_addr
        return consumer
    assert header is not None
    name = header.decode("latin-1")

    def by_header(ctx: Context) -> str:
        value = ctx.request.header(name)
        return "h:" + value if value is not None else "ip:" + ctx.request.remote_addr
    return by_header


def consumer_key_notices(interceptors: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """``(index, message)`` for each enabled ``key: consumer`` limiter that no enabled
    built-in auth interceptor precedes: it would limit every request by client address."""
    notices = []
    auth_before = False
    for index, entry in enumerate(interceptors):
        if not entry.get("enabled", True):
            continue
        if entry["name"] in AUTH_INTERCEPTORS:
            auth_before = True
        elif (entry["name"] == "rate_limiter" and not auth_before
              and (entry.get("config") or {}).get("key") == "consumer"):
            notices.append((index, "no auth interceptor runs before this limiter, so no "
                                   "request has a consumer yet: each is limited by its "
                                   "client address (list basic_auth or key_auth first)"))
    return notices


@register
class RateLimiter(Interceptor):
    name = "rate_limiter"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        problems = super().check(entry, base_dir)
        config = entry["config"]
        if config.get("policy", "local") == "redis" and not problems:
            from .ratelimit_redis import check_redis
            problems.extend(check_redis(config["redis"]))
        return problems

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        self.capacity = int(config["capacity"])
        self.refill_rate = int(config["refill_rate"])
        self.refill_interval = int(config["refill_interval"])
        try:
            self.key_kind, header = parse_key(config.get("key", "global"))
            self.key_of = key_function(self.key_kind, header)
        except ValueError as exc:
            problems.add("config.key", str(exc))
        self.policy = config.get("policy", "local")
        if self.policy == "redis" and not config.get("redis"):
            problems.add("config.redis", "policy redis needs redis: {url: redis://host:port/db}")
        problems.raise_any()
        self.redis_settings: dict[str, Any] = dict(config.get("redis") or {})
        self.limit = BucketLimit("unattached", self.capacity, self.refill_rate,
                                 self.refill_interval)
        limit_value = b"%d" % self.capacity
        self._limit_header = (_LIMIT, limit_value)
        self._x_limit_header = (b"x-" + _LIMIT, limit_value)
        self._take: Callable[[BucketLimit, str], TakeResult | None] = self._no_table

    def attach(self, resources: Resources, ident: str) -> None:
        self.ident = ident
        self.limit = BucketLimit(ident, self.capacity, self.refill_rate, self.refill_interval)
        if self.policy == "redis":
            from .ratelimit_redis import RedisBuckets
            self._redis = RedisBuckets.shared(resources, self.redis_settings)
            self._take = self._redis.take
            self._closed = self._redis.on_failure == "closed"
        elif resources.buckets is not None:
            table: BucketTable = resources.buckets
            self._take = table.take

    def _no_table(self, limit: BucketLimit, key: str) -> TakeResult | None:
        raise RuntimeError("rate_limiter: no shared bucket table (not attached to a worker)")

    def request_filter(self, ctx: Context) -> Reply | None:
        result = self._take(self.limit, self.key_of(ctx))
        if result is None:                       # redis unreachable: RedisBuckets logged it
            return self._redis.failure_reply if self._closed else None
        remaining = result.remaining
        kept = ctx.vars.get(_VAR)
        if kept is None or remaining < kept[0]:
            ctx.vars[_VAR] = (remaining, self._headers(remaining, result.reset_seconds))
        if result.allowed:
            return None
        ctx.vars[RATE_LIMITED] = True
        retry_after = max(1, math.ceil(result.retry_after_seconds))
        return Reply(429, _TOO_MANY, [("retry-after", b"%d" % retry_after)])

    def _headers(self, remaining: int, reset_seconds: float) -> Headers:
        """The six rate-limit headers of a response, in the order they are sent."""
        left = b"%d" % remaining
        reset = b"%d" % math.ceil(reset_seconds)
        return [self._limit_header, (_REMAINING, left), (_RESET, reset),
                self._x_limit_header, (_X_REMAINING, left), (_X_RESET, reset)]

    def pre_downstream_response(self, ctx: Context) -> None:
        kept = ctx.vars.pop(_VAR, None)          # the first limiter of the chain writes them
        if kept is None:
            return
        assert ctx.response is not None
        raw = ctx.response.headers.raw
        for name, _ in raw:
            if name in _HEADER_NAMES:            # the upstream's own: ours replace them
                raw[:] = [pair for pair in raw if pair[0] not in _HEADER_NAMES]
                break
        raw.extend(kept[1])
