"""Shared node state: in-flight counts per worker record, EWMA latency, passive, active health."""
from __future__ import annotations

import os
import signal

import pytest

from dakia_prefork.shm import RangeLock, Segment
from dakia_prefork.shm.nodestats import (EWMA_ALPHA, EWMA_HALF_LIFE, HEALTHY, UNHEALTHY,
                                         NodeStats)
from dakia_prefork.shm.segment import segment_name
from children import fork, kill, wait_ok

RECORDS = 8


@pytest.fixture
def segment(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "nodes"),
                  NodeStats.size_for(16, RECORDS), create=True)
    NodeStats.format(seg, RECORDS)
    yield seg
    seg.unlink()
    seg.close()


def test_in_flight_counts_sum_over_the_records_of_every_process(segment):
    master = NodeStats(segment)
    for record in range(3):
        master.note_record(record)
    index = master.index_for("gw/app/10.0.0.1:80")
    children = []
    for record, count in ((0, 2), (1, 3), (2, 4)):
        def body(record: int = record, count: int = count) -> None:
            stats = NodeStats(segment, record=record)
            for _ in range(count + 5):
                stats.begin(stats.index_for("gw/app/10.0.0.1:80"))
            for _ in range(5):
                stats.end(index)
        children.append(fork(body))
    for pid in children:
        wait_ok(pid)
    assert master.active(index) == 9
    assert master.records_in_use == 3


def test_a_reaped_workers_in_flight_count_vanishes(segment):
    master = NodeStats(segment)
    master.note_record(0)
    master.note_record(1)
    index = master.index_for("gw/app/a:1")
    NodeStats(segment, record=0).begin(index)
    read_fd, write_fd = os.pipe()

    def doomed() -> None:
        stats = NodeStats(segment, record=1)
        for _ in range(5):
            stats.begin(index)
        os.write(write_fd, b"x")
        signal.pause()

    pid = fork(doomed)
    assert os.read(read_fd, 1) == b"x"
    assert master.active(index) == 6
    kill(pid)
    master.clear_record(1)             # what the master does when it reaps the worker
    assert master.active(index) == 1


def test_end_never_goes_below_zero_and_begin_needs_a_record(segment):
    stats = NodeStats(segment, record=0)
    stats.note_record(0)
    index = stats.index_for("gw/app/a:1")
    stats.end(index)
    assert stats.active(index) == 0
    with pytest.raises(RuntimeError):
        NodeStats(segment).begin(index)
    with pytest.raises(ValueError):
        NodeStats(segment, record=RECORDS)


def test_nodes_are_found_by_key_from_any_process_and_a_full_table_says_none(segment):
    parent = NodeStats(segment)
    read_fd, write_fd = os.pipe()

    def child() -> None:
        os.write(write_fd, bytes([NodeStats(segment).index_for("gw/app/b:2")]))

    wait_ok(fork(child))
    assert parent.index_for("gw/app/b:2") == os.read(read_fd, 1)[0]
    indices = {parent.index_for(f"gw/app/n{i}:80") for i in range(parent.capacity - 1)}
    assert len(indices | {parent.index_for("gw/app/b:2")}) == parent.capacity
    assert parent.index_for("gw/app/one-too-many:80") is None
    assert parent.used() == parent.capacity


def test_ewma_starts_at_the_first_sample_and_moves_toward_the_latency(segment):
    stats = NodeStats(segment)
    index = stats.index_for("gw/app/a:1")
    assert stats.latency(index, 0.0) is None
    stats.observe(index, 0.100, True, 5.0, 3, 10)
    assert stats.latency(index, 5.0) == pytest.approx(0.100)
    stats.observe(index, 0.200, True, 5.0, 3, 10)
    assert stats.latency(index, 5.0) == pytest.approx(0.100 + EWMA_ALPHA * 0.100)
    for _ in range(30):
        stats.observe(index, 0.500, True, 5.0, 3, 10)
    assert stats.latency(index, 5.0) == pytest.approx(0.500, rel=1e-3)
    # Without samples the average halves every half-life (a shunned node is tried again).
    assert stats.latency(index, 5.0 + EWMA_HALF_LIFE) == pytest.approx(0.250, rel=1e-3)
    # Failures add no latency sample.
    stats.observe(index, 9.0, False, 5.0, 3, 10)
    assert stats.snapshot(index, 5.0).samples == 32


def test_consecutive_failures_eject_then_the_node_is_tried_again(segment):
    stats = NodeStats(segment)
    index = stats.index_for("gw/app/a:1")
    assert stats.observe(index, 0, False, 100.0, 3, 10) is False
    assert stats.observe(index, 0, False, 100.0, 3, 10) is False
    assert stats.gate(index)[0] <= 100.0
    assert stats.observe(index, 0, False, 101.0, 3, 10) is True
    assert stats.gate(index)[0] == 111.0
    # Requests that were in flight when it was ejected do not extend the ejection.
    assert stats.observe(index, 0, False, 105.0, 3, 10) is False
    assert stats.gate(index)[0] == 111.0
    # Tried again after the ejection: one more failure ejects it at once...
    assert stats.observe(index, 0, False, 111.5, 3, 10) is True
    assert stats.gate(index)[0] == 121.5
    # ... and a success resets the count: it takes three failures again.
    stats.observe(index, 0.01, True, 122.0, 3, 10)
    assert stats.snapshot(index, 122.0).failures == 0
    assert stats.observe(index, 0, False, 123.0, 3, 10) is False
    assert stats.observe(index, 0, False, 123.0, 0, 10) is False       # 0: never eject


def test_failure_counts_are_exact_across_processes(segment):
    index = NodeStats(segment).index_for("gw/app/a:1")

    def body() -> None:
        stats = NodeStats(segment)
        for _ in range(500):
            stats.observe(index, 0, False, 1.0, 0, 10)

    children = [fork(body) for _ in range(4)]
    for pid in children:
        wait_ok(pid)
    assert NodeStats(segment).snapshot(index, 1.0).failures == 2000


def test_active_health_thresholds(segment):
    checker = NodeStats(segment)
    index = checker.index_for("gw/app/a:1")
    assert checker.snapshot(index, 0).health == "unknown"
    assert checker.record_check(index, True, 2, 3, 1.0) != HEALTHY
    assert checker.record_check(index, True, 2, 3, 2.0) == HEALTHY
    assert checker.record_check(index, False, 2, 3, 3.0) == HEALTHY
    assert checker.record_check(index, False, 2, 3, 4.0) == HEALTHY
    assert checker.record_check(index, True, 2, 3, 5.0) == HEALTHY      # the run is broken
    for now in (6.0, 7.0):
        assert checker.record_check(index, False, 2, 3, now) == HEALTHY
    assert checker.record_check(index, False, 2, 3, 8.0) == UNHEALTHY
    assert checker.gate(index)[1] == UNHEALTHY
    snap = checker.snapshot(index, 8.0)
    assert (snap.health, snap.health_fail, snap.checked_at) == ("unhealthy", 3, 8.0)
    checker.reset_health(index)
    assert checker.snapshot(index, 8.0).health == "unknown"


def test_a_process_killed_holding_a_node_lock_stalls_nobody(segment):
    stats = NodeStats(segment)
    index = stats.index_for("gw/app/a:1")
    read_fd, write_fd = os.pipe()

    def holder() -> None:
        RangeLock(segment.fd, 1 + index).acquire_blocking()
        os.write(write_fd, b"x")
        signal.pause()

    pid = fork(holder)
    assert os.read(read_fd, 1) == b"x"
    pauses = []

    def pause() -> None:                # the holder dies while we wait
        pauses.append(1)
        if len(pauses) == 1:
            kill(pid)

    NodeStats(segment, pause=pause).observe(index, 0.05, True, 1.0, 3, 10)
    assert pauses and stats.latency(index, 1.0) == pytest.approx(0.05)


def test_an_unformatted_segment_is_refused(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "raw"), 4096, create=True)
    try:
        with pytest.raises(ValueError):
            NodeStats(seg)
    finally:
        seg.unlink()
        seg.close()


def test_find_sees_claimed_entries_and_never_claims(segment):
    stats = NodeStats(segment)
    assert stats.find("gw/app/a:1") is None
    assert stats.used() == 0                      # a reader leaves the table as it was
    claimed = [stats.index_for(f"gw/app/n{i}:1") for i in range(12)]
    assert [stats.find(f"gw/app/n{i}:1") for i in range(12)] == claimed
    assert stats.find("gw/app/a:1") is None and stats.used() == 12
