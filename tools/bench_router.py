"""Micro benchmark of routing: microseconds per ``GatewayRouter.route()`` and host match.

Each scenario builds one gateway and times ``route()`` on a request that matches the *last*
router (the worst case of a first-match scan), next to a reference linear scan over the same
compiled filters (what the router did before it was indexed). The indexed router should cost
about the same for 1,000 routes as for one; the linear scan grows by ~0.3 µs per router.
Routers the index cannot analyse (``$matches`` here) stay linear: that row shows the floor
of what indexing buys. Host matching is timed for 1 and 1,000 exact hosts and a wildcard.

Not a test: nothing here passes or fails.

usage: python tools/bench_router.py [COUNT]       (default at most 200000 calls per run)
"""
from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dakia_prefork.routing.filters import Predicate, compile_filter  # noqa: E402
from dakia_prefork.routing.hosts import HostMatcher  # noqa: E402
from dakia_prefork.routing.router import GatewayRouter  # noqa: E402

ROUTES = 1000


class Subject:
    """A FilterSubject with plain slots, as cheap to read as message.request.Request."""

    __slots__ = ("method", "path", "scheme", "host", "remote_addr", "client_subject")

    def __init__(self, path: str, host: str = "example.com", method: str = "GET") -> None:
        self.method = method
        self.path = path
        self.scheme = "http"
        self.host = host
        self.remote_addr = "127.0.0.1"
        self.client_subject = ""

    def header(self, name: str) -> str | None:
        return None

    def query(self, name: str) -> str | None:
        return None


class LinearRouter:
    """The reference: every router tried in order, first match wins."""

    def __init__(self, gateway: Mapping[str, Any]) -> None:
        filters: dict[str, Predicate] = {}
        for spec in gateway.get("filters") or ():
            body = {key: value for key, value in spec.items() if key != "name"}
            filters[spec["name"]] = compile_filter(body, spec["name"])
        self.routes = [(None if r.get("filter") is None else filters[r["filter"]], r["upstream"])
                       for r in gateway.get("routers") or ()]

    def route(self, subject: Subject) -> str | None:
        for matches, upstream in self.routes:
            if matches is None or matches(subject):
                return upstream
        return None


def gateway(specs: list[dict[str, Any]], hosts: list[str] | None = None) -> dict[str, Any]:
    """A normalised gateway with one router (and upstream) per filter spec, in order."""
    return {
        "name": "bench",
        "downstreams": [{"host": host} for host in hosts or ()],
        "upstreams": [{"name": f"u{i}", "default": False} for i in range(len(specs))],
        "routers": [{"upstream": f"u{i}", "filter": f"f{i}"} for i in range(len(specs))],
        "filters": [{"name": f"f{i}", **spec} for i, spec in enumerate(specs)],
    }


def scenarios() -> list[tuple[str, dict[str, Any], Subject]]:
    last = ROUTES - 1
    hosts = [f"h{i}.example.com" for i in range(ROUTES)]
    return [
        ("1 route, path $starts_with",
         gateway([{"path": {"$starts_with": "/svc0"}}]), Subject("/svc0/items/42")),
        ("1 route, host + path",
         gateway([{"host": "h0.example.com", "path": {"$starts_with": "/api"}}], hosts[:1]),
         Subject("/api/items/42", host="h0.example.com")),
        (f"{ROUTES} routes, path $starts_with",
         gateway([{"path": {"$starts_with": f"/svc{i}/"}} for i in range(ROUTES)]),
         Subject(f"/svc{last}/items/42")),
        (f"{ROUTES} routes, path $eq",
         gateway([{"path": f"/svc{i}/items"} for i in range(ROUTES)]),
         Subject(f"/svc{last}/items")),
        (f"{ROUTES} hosts + routes, host $eq + path",
         gateway([{"host": h, "path": {"$starts_with": "/api"}} for h in hosts], hosts),
         Subject("/api/items/42", host=hosts[last])),
        (f"{ROUTES} routes, path + method $in",
         gateway([{"path": {"$starts_with": f"/svc{i}/"}, "method": {"$in": ["GET", "POST"]}}
                  for i in range(ROUTES)]),
         Subject(f"/svc{last}/items/42", method="POST")),
        (f"{ROUTES} routes, $matches (not indexable)",
         gateway([{"path": {"$matches": f"^/svc{i}/"}} for i in range(ROUTES)]),
         Subject(f"/svc{last}/items/42")),
    ]


def per_call(count: int, body: Callable[[], object]) -> float:
    """Microseconds per call of ``body``, best of three runs of at most ``count`` calls.

    Slow bodies (the linear scan of 1,000 routers) get fewer calls: about 0.2 s a run.
    """
    started = time.perf_counter()
    for _ in range(100):
        body()
    estimate = (time.perf_counter() - started) / 100
    count = max(100, min(count, int(0.2 / max(estimate, 1e-9))))
    best = float("inf")
    for _ in range(3):
        gc.disable()
        started = time.perf_counter()
        for _ in range(count):
            body()
        elapsed = time.perf_counter() - started
        gc.enable()
        best = min(best, elapsed)
    return best / count * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"route(), request matching the last router (best of 3), µs per call")
    print(f"  {'scenario':<42} {'linear':>8} {'router':>8}")
    for label, spec, subject in scenarios():
        router, linear = GatewayRouter(spec), LinearRouter(spec)
        expected = linear.route(subject)
        assert expected is not None and router.route(subject) == expected, label
        print(f"  {label:<42} {per_call(count, lambda: linear.route(subject)):8.2f}"
              f" {per_call(count, lambda: router.route(subject)):8.2f}")
    print("HostMatcher.match(), µs per call")
    many = HostMatcher([f"h{i}.example.com" for i in range(ROUTES)] + ["*.example.net"])
    for label, matcher, host in [
        ("1 exact host", HostMatcher(["example.com"]), "example.com"),
        (f"{ROUTES} exact hosts, the last", many, f"h{ROUTES - 1}.example.com"),
        (f"{ROUTES} exact hosts + wildcard, a.b.example.net", many, "a.b.example.net"),
    ]:
        assert matcher.match(host) is not None, label
        print(f"  {label:<42} {per_call(count, lambda: matcher.match(host)):8.2f}")


if __name__ == "__main__":
    main()
