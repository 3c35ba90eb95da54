"""Token buckets in shared memory: Dakia's refill, exact across processes, bounded table."""
from __future__ import annotations

import os
import signal

import pytest

from dakia_prefork.shm import RangeLock, Segment
from dakia_prefork.shm.buckets import BucketLimit, BucketTable, take_token
from dakia_prefork.shm.segment import segment_name
from children import fork, kill, reap


def make_segment(tmp_path, capacity: int, role: str = "buckets") -> Segment:
    seg = Segment(segment_name(str(tmp_path), os.getpid(), role),
                  BucketTable.size_for(capacity), create=True)
    BucketTable.format(seg)
    return seg


@pytest.fixture
def segment(tmp_path):
    seg = make_segment(tmp_path, 1024)
    yield seg
    seg.unlink()
    seg.close()


def test_dakia_sample_limit_starts_full_and_refills_in_whole_steps(segment):
    table = BucketTable(segment)
    limit = BucketLimit("root/0", capacity=5, refill_rate=2, refill_interval_ms=12000)
    answers = [table.take(limit, "ip", now=100.0) for _ in range(6)]
    assert [a.allowed for a in answers] == [True] * 5 + [False]
    assert [a.remaining for a in answers] == [4, 3, 2, 1, 0, 0]
    assert answers[0].reset_seconds == 12.0          # one step brings 2 tokens back
    assert answers[4].reset_seconds == 36.0          # five tokens: three steps
    assert answers[5].retry_after_seconds == 12.0
    later = table.take(limit, "ip", now=111.0)        # not a whole step yet
    assert not later.allowed and later.retry_after_seconds == pytest.approx(1.0)
    step = table.take(limit, "ip", now=112.0)         # one step: +2, take 1
    assert step.allowed and step.remaining == 1
    assert step.reset_seconds == 24.0
    many = table.take(limit, "ip", now=112.0 + 12 * 50)   # long idle: capped at capacity
    assert many.allowed and many.remaining == 4


def test_a_full_bucket_is_the_same_as_no_bucket():
    limit = BucketLimit("l", capacity=3, refill_rate=1, refill_interval_ms=1000)
    # From full, the refill steps count from the take, whatever the bucket's history.
    fresh = take_token(3, 50.0, 50.0, limit)
    old_full = take_token(3, 7.3, 50.0, limit)
    assert fresh == old_full
    assert fresh[3].reset_seconds == 1.0


def test_a_smaller_capacity_after_a_reload_caps_the_tokens(segment):
    table = BucketTable(segment)
    table.take(BucketLimit("l", 100, 1, 1000), "k", now=1.0)
    answer = table.take(BucketLimit("l", 10, 1, 1000), "k", now=1.0)
    assert answer.remaining == 9


def test_limiters_and_keys_have_separate_buckets(segment):
    table = BucketTable(segment)
    first = BucketLimit("root/0", 1, 1, 60000)
    second = BucketLimit("root/1", 1, 1, 60000)
    assert table.take(first, "a", now=1.0).allowed
    assert not table.take(first, "a", now=1.0).allowed
    assert table.take(first, "b", now=1.0).allowed
    assert table.take(second, "a", now=1.0).allowed


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_together_admit_exactly_the_capacity(segment, processes):
    limit = BucketLimit("gw/limit", capacity=200, refill_rate=1, refill_interval_ms=3_600_000)
    read_fd, write_fd = os.pipe()

    def body() -> None:
        table = BucketTable(segment)
        admitted = sum(table.take(limit, "203.0.113.9").allowed for _ in range(300))
        os.write(write_fd, admitted.to_bytes(2, "little"))

    children = [fork(body) for _ in range(processes)]
    for pid in children:
        assert reap(pid) == 0
    counts = [int.from_bytes(os.read(read_fd, 2), "little") for _ in children]
    assert sum(counts) == 200
    answer = BucketTable(segment).take(limit, "203.0.113.9")
    assert not answer.allowed and answer.remaining == 0


def test_refill_is_shared_too(segment):
    """Two processes over three refill steps admit capacity + 3 x refill_rate, not twice that."""
    limit = BucketLimit("l", capacity=10, refill_rate=4, refill_interval_ms=1000)
    read_fd, write_fd = os.pipe()

    def body() -> None:
        table = BucketTable(segment)
        admitted = 0
        for now in (10.0, 11.0, 12.0, 13.0):
            admitted += sum(table.take(limit, "k", now=now).allowed for _ in range(20))
        os.write(write_fd, bytes([admitted]))

    children = [fork(body) for _ in range(2)]
    for pid in children:
        assert reap(pid) == 0
    assert sum(os.read(read_fd, 1)[0] for _ in children) == 10 + 3 * 4


def test_idle_buckets_are_evicted_and_the_table_stays_bounded(tmp_path):
    seg = make_segment(tmp_path, 64, "small")
    try:
        table = BucketTable(seg)
        limit = BucketLimit("l", capacity=2, refill_rate=1, refill_interval_ms=1000)
        for i in range(5000):
            assert table.take(limit, f"client-{i}", now=float(i)).allowed
        assert table.used() <= 64
        idle, busy = table.evictions()
        assert idle >= 5000 - 64 and busy == 0     # each was full again 1 s after its take
    finally:
        seg.unlink()
        seg.close()


def test_when_every_entry_is_busy_the_soonest_full_bucket_is_evicted(tmp_path):
    seg = make_segment(tmp_path, 16, "busy")       # one window: every key competes
    try:
        table = BucketTable(seg)
        slow = BucketLimit("l", capacity=5, refill_rate=1, refill_interval_ms=10_000)
        for i in range(16):                            # 16 buckets, all refilling
            for _ in range(5 if i else 1):             # client-0 will be full soonest
                table.take(slow, f"client-{i}", now=100.0)
        assert table.take(slow, "newcomer", now=101.0).allowed
        assert table.evictions() == (0, 1)
        assert table.used() == 16
        # The victim was client-0, the one closest to full: its bucket starts anew.
        assert table.take(slow, "client-0", now=101.0).remaining == 4
        # Everyone else kept their state.
        assert not table.take(slow, "client-7", now=101.0).allowed
    finally:
        seg.unlink()
        seg.close()


def test_idle_buckets_go_before_busy_ones(tmp_path):
    seg = make_segment(tmp_path, 16, "idle-first")
    try:
        table = BucketTable(seg)
        quick = BucketLimit("q", capacity=1, refill_rate=1, refill_interval_ms=1000)
        slow = BucketLimit("s", capacity=3, refill_rate=1, refill_interval_ms=60_000)
        table.take(quick, "idle-soon", now=0.0)
        for i in range(15):
            table.take(slow, f"busy-{i}", now=0.0)
        assert table.take(slow, "newcomer", now=5.0).allowed
        assert table.evictions() == (1, 0)
        assert all(table.take(slow, f"busy-{i}", now=5.0).remaining == 1 for i in range(15))
    finally:
        seg.unlink()
        seg.close()


def test_a_process_killed_holding_a_bucket_lock_stalls_nobody(segment):
    table = BucketTable(segment)
    limit = BucketLimit("l", 3, 1, 1000)
    table.take(limit, "k", now=1.0)
    index = table._find(limit.digest("k"))
    read_fd, write_fd = os.pipe()

    def holder() -> None:
        RangeLock(segment.fd, 1 + index).acquire_blocking()
        os.write(write_fd, b"x")
        signal.pause()

    pid = fork(holder)
    assert os.read(read_fd, 1) == b"x"
    pauses = []

    def pause() -> None:
        pauses.append(1)
        if len(pauses) == 1:
            kill(pid)

    answer = BucketTable(segment, pause=pause).take(limit, "k", now=1.0)
    assert pauses and answer.allowed and answer.remaining == 1


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        BucketLimit("l", 0, 1, 1000)
    with pytest.raises(ValueError):
        BucketLimit("l", 1, 1, 0)


def test_digests_are_cached_bounded_and_equal_to_the_uncached_ones(monkeypatch):
    import hashlib

    from dakia_prefork.shm import buckets

    def plain(limiter: str, key: str) -> int:
        hasher = hashlib.blake2b(limiter.encode() + b"\0", digest_size=8)
        hasher.update(key.encode("utf-8", "surrogateescape"))
        return int.from_bytes(hasher.digest(), "little") or 1

    monkeypatch.setattr(buckets, "DIGEST_CACHE_ENTRIES", 4)
    limit = BucketLimit("g/0", 10, 1, 1000)
    keys = [f"10.0.0.{i}" for i in range(10)] + ["10.0.0.1", "x" * 65, "x" * 65, "\udcff"]
    for key in keys:
        assert limit.digest(key) == plain("g/0", key)
        assert len(limit._digests) <= 4
    assert "x" * 65 not in limit._digests       # long keys (header values) are not kept
    assert BucketLimit("g/1", 10, 1, 1000).digest("10.0.0.1") != limit.digest("10.0.0.1")
