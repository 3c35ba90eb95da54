"""Micro benchmark of the shared-memory state on the request path: microseconds per operation.

Single process, real segments and real range locks (two fcntl calls per locked operation),
no contention. Measures:

- ``take()`` of the rate limiter on a bucket that exists (the per-request cost of a limited
  route), on a new key each time (bucket creation, idle eviction once the table is full);
- one balancer decision per algorithm with shared stats: ``pick`` + ``begin`` + ``end``;
- ``CounterTable.fetch_add`` alone, for reference (round robin's one locked operation).

Not a test: nothing here passes or fails.

usage: python tools/bench_shm.py [COUNT]       (default 100000 of each)
"""
from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dakia_prefork.balance import ALGORITHMS, make_balancer  # noqa: E402
from dakia_prefork.balance.base import Balancer  # noqa: E402
from dakia_prefork.http.upstream import Node  # noqa: E402
from dakia_prefork.shm import CounterTable, Segment  # noqa: E402
from dakia_prefork.shm.buckets import BucketLimit, BucketTable  # noqa: E402
from dakia_prefork.shm.nodestats import NodeStats  # noqa: E402
from dakia_prefork.shm.segment import segment_name  # noqa: E402


def per_call(label: str, count: int, body: Callable[[int], object]) -> None:
    body(0)
    gc.disable()
    started = time.perf_counter()
    for i in range(count):
        body(i)
    elapsed = time.perf_counter() - started
    gc.enable()
    print(f"  {label:<44} {elapsed / count * 1e6:7.2f} µs")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    state_dir = tempfile.mkdtemp(prefix="bench-shm-")
    pid = os.getpid()
    segments = [
        Segment(segment_name(state_dir, pid, "buckets"), BucketTable.size_for(65536), create=True),
        Segment(segment_name(state_dir, pid, "nodes"), NodeStats.size_for(1024), create=True),
        Segment(segment_name(state_dir, pid, "counters"), CounterTable.size_for(1024),
                create=True),
    ]
    try:
        buckets_seg, nodes_seg, counters_seg = segments
        BucketTable.format(buckets_seg)
        NodeStats.format(nodes_seg)
        table = BucketTable(buckets_seg)
        master = NodeStats(nodes_seg)
        for record in range(8):                 # as with 4 workers mid-way through a reload
            master.note_record(record)
        stats = NodeStats(nodes_seg, record=3)
        counters = CounterTable(counters_seg)

        print(f"rate limiter (table of {table.capacity} buckets), {count} calls:")
        limit = BucketLimit("root/0", capacity=10**9, refill_rate=1, refill_interval_ms=1000)
        per_call("take(), existing bucket", count, lambda i: table.take(limit, "203.0.113.9"))
        keys = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count)]
        small = BucketLimit("root/1", capacity=1, refill_rate=1, refill_interval_ms=1)
        per_call("take(), new key each call (create/evict)", count,
                 lambda i: table.take(small, keys[i]))
        per_call("BucketLimit.digest(key) alone", count, lambda i: small.digest(keys[i]))

        slot = counters.slot_for("gw/app")
        assert slot is not None, "a fresh counter table has room"
        print("reference:")
        per_call("CounterTable.fetch_add", count, lambda i: counters.fetch_add(slot))

        print("one balancer decision, 3 nodes, shared stats: pick + begin + end(ok):")
        nodes = [Node(("tcp", f"10.0.0.{i}", 8080), w) for i, w in enumerate((3, 2, 1))]
        for algorithm in ALGORITHMS:
            balancer = make_balancer(algorithm, f"gw/{algorithm}", nodes, counters, stats)

            def decide(i: int, balancer: Balancer = balancer) -> None:
                node = balancer.pick(keys[i])
                assert node is not None            # every node is healthy here
                balancer.begin(node)
                balancer.end(node, 0.004, True)

            per_call(algorithm, count, decide)
        balancer = make_balancer("least_connection", "gw/lc", nodes, counters, stats)
        per_call("least_connection: pick alone", count, lambda i: balancer.pick())
        lone = balancer

        def begin_end(i: int) -> None:
            lone.begin(nodes[0])
            lone.end(nodes[0], 0.004, True)

        per_call("begin + end(ok) alone", count, begin_end)
    finally:
        for seg in segments:
            seg.unlink()
            seg.close()
        os.rmdir(state_dir)


if __name__ == "__main__":
    main()
