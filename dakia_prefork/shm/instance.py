"""The shared-memory segments of one master instance, created together and removed together.

The master creates them before its first fork (``create``); workers inherit the mappings,
and tools attach to the control block by name. Sizes are fixed for the master's life: the
capacities below bound what a running master can track (see each module for what happens
when a table is full).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .buckets import BucketTable
from .control import MAX_SLOTS, ControlBlock
from .counters import CounterTable
from .metrics import MetricRegions
from .nodestats import NodeStats
from .segment import Segment, segment_name

COUNTER_CAPACITY = 4096       # round-robin rotations: one per (gateway, upstream)
NODE_CAPACITY = 4096          # upstream nodes named over the master's life
BUCKET_CAPACITY = 65536       # rate-limit buckets: (limiter, key) pairs kept at once
METRIC_RECORDS = MAX_SLOTS    # one metrics region per control-block record
METRIC_CAPACITY = 8192        # metric entries per region: ~46 per route used, 4 per node (metrics/keys.py)


@dataclass
class InstanceSegments:
    control: Segment
    counters: Segment
    nodes: Segment
    buckets: Segment
    metrics: Segment

    @classmethod
    def create(cls, state_dir: str, master_pid: int) -> "InstanceSegments":
        made: list[Segment] = []

        def make(role: str, size: int) -> Segment:
            segment = Segment(segment_name(state_dir, master_pid, role), size, create=True)
            # posix_ipc does not open with O_CLOEXEC: keep these out of an exec'd new master.
            os.set_inheritable(segment.fd, False)
            made.append(segment)
            return segment

        try:
            segments = cls(make("control", ControlBlock.SIZE),
                           make("counters", CounterTable.size_for(COUNTER_CAPACITY)),
                           make("nodes", NodeStats.size_for(NODE_CAPACITY)),
                           make("buckets", BucketTable.size_for(BUCKET_CAPACITY)),
                           # Zero-filled, which is a formatted region (all entries free);
                           # pages a worker never writes to are never allocated.
                           make("metrics", MetricRegions.size_for(METRIC_RECORDS,
                                                                  METRIC_CAPACITY)))
        except BaseException:
            for segment in made:
                segment.unlink()
                segment.close()
            raise
        NodeStats.format(segments.nodes)
        BucketTable.format(segments.buckets)
        return segments

    def all(self) -> list[Segment]:
        return [self.control, self.counters, self.nodes, self.buckets, self.metrics]

    def metric_regions(self) -> MetricRegions:
        """The per-worker metric regions in ``metrics`` (shm/metrics.py)."""
        return MetricRegions(self.metrics, METRIC_RECORDS, METRIC_CAPACITY)

    def unlink(self) -> None:
        for segment in self.all():
            segment.unlink()
