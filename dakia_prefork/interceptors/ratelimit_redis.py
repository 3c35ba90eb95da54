"""The ``redis`` policy of ``rate_limiter``: buckets in redis, one limit for a whole cluster.

::

    policy: redis
    redis:
      url: redis://:password@10.0.0.5:6379/0     # rediss:// for TLS, unix:///path.sock?db=0
      on_failure: open          # open: let requests through | closed: answer 503
      timeout: 0.25             # seconds, to connect and for each answer

Every gateway (every worker of every master) that names the same redis and runs the same
config shares each bucket, keyed ``dakia:rl:<gateway>/<index>:<key>``.

Atomicity. One Lua script (``SCRIPT``) reads the bucket, refills it, takes a token and
writes it back, in one ``EVALSHA`` (redis-py's ``Script`` loads it again after a
``SCRIPT FLUSH`` or a restart): redis runs a script alone, so concurrent gateways cannot
both take the last token. The script uses redis's clock (``TIME``), never the gateways',
whose clocks need not agree. Semantics are those of ``shm/buckets.py``, in milliseconds:
full to start with, whole refill steps counted from when the bucket was last full. Each
key expires a second after its bucket would be full again (a full bucket and no bucket
answer the same; the second covers redis's expiry precision), so idle keys cost redis
nothing.

Connections. redis-py over the worker's gevent-patched sockets: a request waiting for redis
yields to the worker's other connections. One pool per worker and per (url, timeout,
on_failure), kept across reloads (``Resources.keep``), at most ``POOL_SIZE`` connections;
a request finding them all busy waits up to ``timeout`` for one. The client is made on the
first request, in the worker: the master, which also builds chains to check them, never
imports redis. A connection that broke while pooled is retried once on a new one; nothing
else is retried (a script that may have run is not run twice).

Failures. Redis unreachable, too slow (``timeout``), or answering an error: the request
fails open (passes, without RateLimit headers) or closed (503 with ``Retry-After: 1``: the
gateway cannot tell whether the client is within its limit, so it says the service is
unavailable, not that the client sent too much). After a failure, redis is not tried
again for ``HOLD_DOWN`` seconds, so a redis that hangs costs one ``timeout`` per second per
worker, not one per request. Logged at most every ``LOG_EVERY`` seconds per worker and
pool: the first failure, then how many requests failed since, then the recovery.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..shm.buckets import BucketLimit, TakeResult
from .base import Problem
from .context import Reply
from .resources import Resources

log = logging.getLogger("dakia.interceptors.rate_limiter")

DEFAULT_TIMEOUT = 0.25
POOL_SIZE = 64
HOLD_DOWN = 1.0
LOG_EVERY = 10.0
KEY_PREFIX = "dakia:rl:"
_LONG_KEY = 128
_SCHEMES = ("redis", "rediss", "unix")
_UNAVAILABLE = b"503 Service Unavailable: the rate limit cannot be checked\n"

# KEYS[1] the bucket; ARGV: capacity, refill_rate, refill_interval (ms), and optionally a
# time in ms to use instead of TIME (tests only). Returns {allowed 0|1, tokens left,
# ms until full, ms until the next token (0 when allowed)}.
SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil or tokens >= capacity then
  tokens = capacity
  updated = now
else
  if updated > now then updated = now end
  local elapsed = now - updated
  if elapsed >= interval then
    local steps = math.floor(elapsed / interval)
    tokens = tokens + steps * rate
    if tokens >= capacity then
      tokens = capacity
      updated = now
    else
      updated = updated + steps * interval
    end
  end
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local full_at = updated + math.ceil((capacity - tokens) / rate) * interval
local retry = 0
if allowed == 0 then retry = math.max(0, updated + interval - now) end
redis.call('HSET', KEYS[1], 't', tokens, 'u', updated)
redis.call('PEXPIRE', KEYS[1], math.max(0, full_at - now) + 1000)
return {allowed, tokens, math.max(0, full_at - now), retry}
"""


def check_redis(settings: dict[str, Any]) -> list[Problem]:
    """What ``check`` can tell about a redis setting without connecting."""
    problems: list[Problem] = []
    url = settings["url"]
    try:
        parts = urlsplit(url)
        parts.port                                          # noqa: B018 - validates it
    except ValueError as exc:
        return [("config.redis.url", f"{redact(url)!r} is not a URL: {exc}")]
    if parts.scheme not in _SCHEMES:
        problems.append(("config.redis.url", f"{redact(url)!r}: the scheme must be "
                                             "redis://, rediss:// or unix://"))
    elif parts.scheme == "unix" and not parts.path:
        problems.append(("config.redis.url", "unix:// needs a socket path"))
    elif parts.scheme != "unix" and not parts.hostname:
        problems.append(("config.redis.url", f"{redact(url)!r} names no host"))
    if importlib.util.find_spec("redis") is None:
        problems.append(("config.policy", "policy redis needs the redis package: "
                                          "pip install 'dakia-prefork[redis]'"))
    return problems


def redact(url: str) -> str:
    """``url`` without its password, for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<invalid url>"


def bucket_key(limit: BucketLimit, key: str) -> str:
    """The redis key of ``limit``'s bucket for ``key``; long keys (header values) hashed."""
    if len(key) > _LONG_KEY:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{KEY_PREFIX}{limit.limiter}:{key}"


class RedisBuckets:
    """One worker's client of one redis, with its failure accounting."""

    @classmethod
    def shared(cls, resources: Resources, settings: dict[str, Any]) -> "RedisBuckets":
        url = settings["url"]
        timeout = float(settings.get("timeout", DEFAULT_TIMEOUT))
        on_failure = settings.get("on_failure", "open")
        return resources.keep(("rate_limiter.redis", url, timeout, on_failure),
                              lambda: cls(url, timeout, on_failure))

    def __init__(self, url: str, timeout: float, on_failure: str,
                 clock: Any = time.monotonic) -> None:
        self.url = url
        self.timeout = timeout
        self.on_failure = on_failure
        self.failure_reply = Reply(503, _UNAVAILABLE, [("retry-after", "1")])
        self._clock = clock
        self._script: Any = None
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self._down_until = 0.0
        self._next_log = 0.0
        self._outage = 0           # requests failed since redis was last reachable
        self._unreported = 0       # of which not logged yet
        self._last_error = ""

    def _connect(self) -> Any:
        """Build the pool and the script (no connection yet: the first call opens it)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        pool = redis.BlockingConnectionPool.from_url(
            self.url, max_connections=POOL_SIZE, timeout=self.timeout,
            socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        self._errors = (redis.RedisError, OSError)
        self._script = redis.Redis(connection_pool=pool).register_script(SCRIPT)
        return self._script

    def take(self, limit: BucketLimit, key: str, now_ms: int | None = None) -> TakeResult | None:
        """Take a token from ``limit``'s bucket for ``key``; None when redis failed."""
        now = self._clock()
        if now < self._down_until:
            self._failed(None, now)
            return None
        try:
            script = self._script or self._connect()
            args = [limit.capacity, limit.refill_rate, limit.refill_interval_ms]
            if now_ms is not None:
                args.append(now_ms)
            allowed, tokens, reset_ms, retry_ms = script(keys=[bucket_key(limit, key)],
                                                         args=args)
        except self._errors as exc:
            self._failed(exc, now)
            return None
        if self._outage:
            self._recovered()
        return TakeResult(bool(allowed), int(tokens), reset_ms / 1000.0, retry_ms / 1000.0)

    def _failed(self, exc: BaseException | None, now: float) -> None:
        if exc is not None:
            self._down_until = now + HOLD_DOWN
            self._last_error = f"{type(exc).__name__}: {exc}"
        first = self._outage == 0
        self._outage += 1
        self._unreported += 1
        if now < self._next_log:
            return
        if first:
            log.error("rate_limiter: redis %s unreachable (%s); failing %s: %s",
                      redact(self.url), self._last_error, self.on_failure,
                      "requests pass unlimited" if self.on_failure == "open"
                      else "requests get 503")
        else:
            log.error("rate_limiter: redis %s still unreachable (%s); %d request(s) failed "
                      "%s since the last report", redact(self.url), self._last_error,
                      self._unreported, self.on_failure)
        self._unreported = 0
        self._next_log = now + LOG_EVERY

    def _recovered(self) -> None:
        log.warning("rate_limiter: redis %s reachable again after %d failed request(s)",
                    redact(self.url), self._outage)
        self._outage = self._unreported = 0     # _next_log stays: a flapping redis
                                                # logs at most every LOG_EVERY seconds
