"""Per-worker metric regions (shm/metrics.py): real processes on one real segment."""
from __future__ import annotations

import os

import pytest

from dakia_prefork.shm import Segment
from dakia_prefork.shm.metrics import OVERFLOW_KEY, MetricRegions, metric_key
from dakia_prefork.shm.segment import segment_name
from children import fork, kill, reap

RECORDS = 4
CAPACITY = 64


@pytest.fixture
def segment(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "metrics"),
                  MetricRegions.size_for(RECORDS, CAPACITY), create=True)
    yield seg
    seg.unlink()
    seg.close()


def test_keys_are_stable_distinct_and_above_the_reserved_ones() -> None:
    keys = {metric_key("requests", "gw", str(i)) for i in range(1000)}
    assert len(keys) == 1000 and min(keys) > OVERFLOW_KEY
    assert metric_key("a", "b") == metric_key("a", "b")
    # Labels are arbitrary strings: no way of splitting them gives another's key.
    assert len({metric_key("a", "b"), metric_key("a\0b"), metric_key("a\0", "b"),
                metric_key("ab"), metric_key("a", "", "b")}) == 5


def test_workers_count_in_their_own_regions_and_readers_sum(segment) -> None:
    key = metric_key("requests_total", "gw", "0", "2xx")
    other = metric_key("requests_total", "gw", "0", "5xx")

    def worker(record: int, count: int) -> None:
        regions = MetricRegions(segment, RECORDS, CAPACITY)
        writer = regions.writer(record)
        slot = writer.slot(key)
        for _ in range(count):
            writer.add(slot)
        writer.add(writer.slot(other), 7)

    pids = [fork(lambda r=record: worker(r, 1000 * (r + 1))) for record in range(RECORDS)]
    assert [reap(pid) for pid in pids] == [0] * RECORDS
    regions = MetricRegions(segment, RECORDS, CAPACITY)
    assert regions.total(key) == 1000 + 2000 + 3000 + 4000
    assert regions.totals([other, metric_key("never")]) == {other: 28, metric_key("never"): 0}


def test_a_replacement_keeps_counting_from_its_predecessor(segment) -> None:
    key = metric_key("requests_total")

    def count_forever() -> None:
        writer = MetricRegions(segment, RECORDS, CAPACITY).writer(1)
        slot = writer.slot(key)
        writer.add(slot, 500)
        os.write(ready_w, b"x")
        while True:
            writer.add(slot)

    ready_r, ready_w = os.pipe()
    pid = fork(count_forever)
    assert os.read(ready_r, 1) == b"x"
    kill(pid)                  # and reaped
    regions = MetricRegions(segment, RECORDS, CAPACITY)
    killed_at = regions.total(key)
    assert killed_at >= 500
    # The slot's next worker finds the entry and goes on from the same value.
    writer = regions.writer(1)
    slot = writer.slot(key)
    assert writer.value(slot) == killed_at
    writer.add(slot)
    assert regions.total(key) == killed_at + 1
    os.close(ready_r)
    os.close(ready_w)


def test_a_full_region_counts_in_the_overflow_entry(segment) -> None:
    regions = MetricRegions(segment, RECORDS, CAPACITY)
    writer = regions.writer(2)
    slots = [writer.slot(metric_key("m", str(i))) for i in range(CAPACITY + 10)]
    overflow = slots[-1]
    assert len(set(slots[:CAPACITY - 1])) == CAPACITY - 1    # one entry is the overflow's
    assert set(slots[CAPACITY - 1:]) == {overflow}
    writer.add(overflow, 3)
    assert regions.total(OVERFLOW_KEY) == 3
    # The other regions are untouched.
    assert regions.writer(0).value(regions.writer(0).slot(metric_key("m", "0"))) == 0
