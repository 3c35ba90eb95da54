"""Benchmark: what a rate_limiter costs per request, through the real gateway.

Starts a fast upstream and one-worker gateways that differ only in their interceptors:

- ``plain``: none (the request path without a chain);
- ``chain``: ``server_version`` alone (what having a chain at all costs);
- ``local``: ``rate_limiter`` keyed by ``ip`` on the shared-memory table, with a bucket so
  large that nothing is refused (every request pays the check and the six headers);
- ``redis`` (with ``--redis``): the same limit with ``policy: redis`` against a
  redis-server started here (loopback, nothing persisted).

Each is driven with wrk (``-t1``, keep-alive) in alternating rounds; medians are reported
with the cost per request relative to ``plain``, ``1/rps - 1/rps_plain``: the worker is
CPU-bound (one core), so that difference is the time the extra work takes.

    python tools/bench/rate_limiter.py                       # httptools, 3 rounds of 5 s
    python tools/bench/rate_limiter.py --engine h11 --redis --rounds 5

Never part of the test suite's pass/fail.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_config import bare_gateway, config_file  # noqa: E402
from bench_load import LoadResult, Request, run_wrk  # noqa: E402
from bench_procs import Processes, free_port, wait_http, wait_port  # noqa: E402
from bench_targets import summarize  # noqa: E402

BIG = {"capacity": 1_000_000_000, "refill_rate": 1, "refill_interval": 1000, "key": "ip"}


def variants(redis_url: str | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {
        "plain": [],
        "chain": [{"name": "server_version"}],
        "local": [{"name": "rate_limiter", "config": dict(BIG)}],
    }
    if redis_url:
        out["redis"] = [{"name": "rate_limiter", "config": dict(
            BIG, policy="redis", redis={"url": redis_url, "on_failure": "closed"})}]
    return out


def write_config(tmp: str, name: str, port: int, upstream_port: int, engine: str,
                 interceptors: list[dict[str, Any]]) -> str:
    config = config_file(tmp, name, engine,
                         {**bare_gateway(port, upstream_port), "interceptors": interceptors})
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="httptools", choices=["h11", "httptools"])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", action="store_true",
                        help="also measure policy: redis (needs redis-server)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (apt-get install wrk)")
        return 2
    tmp = tempfile.mkdtemp(prefix="dakia-bench-rl-")
    try:
        with Processes() as procs:
            return measure(args, tmp, procs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, tmp: str, procs: Processes) -> int:
    """Start everything under ``procs``, run the rounds and print the table."""
    upstream_port = free_port()
    wait_port(upstream_port, procs.start(
        [sys.executable, os.path.join(HERE, "upstream.py"), str(upstream_port)],
        os.path.join(tmp, "upstream.log")))
    redis_url = None
    if args.redis:
        redis_port = free_port()
        wait_port(redis_port, procs.start(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save",
             "", "--appendonly", "no"], os.path.join(tmp, "redis.log")))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    ports: dict[str, int] = {}
    for name, interceptors in variants(redis_url).items():
        port = ports[name] = free_port()
        config = write_config(tmp, name, port, upstream_port, args.engine, interceptors)
        procs.start([sys.executable, "-m", "dakia_prefork.cli", "start", "-c", config],
                    os.path.join(tmp, f"gateway-{name}.log"))
    for port in ports.values():
        wait_http(port, Request())
    results: dict[str, list[LoadResult]] = {name: [] for name in ports}
    for _ in range(args.rounds):
        for name, port in ports.items():
            results[name].append(run_wrk(port, Request(), args.connections,
                                         args.duration))
    print(f"engine {args.engine}, 1 worker, wrk -t1 -c{args.connections}, "
          f"{args.rounds} x {args.duration:g}s, medians")
    print(f"{'gateway':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>8} "
          f"{'µs/request vs plain':>20}")
    plain = summarize(results["plain"]).rps
    for name, runs in results.items():
        med = summarize(runs)
        cost = "" if name == "plain" else f"{(1 / med.rps - 1 / plain) * 1e6:+.1f}"
        print(f"{name:<8} {med.rps:>9.0f} {med.p50_ms:>8.2f} {med.p99_ms:>8.2f} "
              f"{med.errors:>8} {cost:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
