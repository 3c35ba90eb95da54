"""Shared memory: counters shared across processes, locks a dead holder cannot keep."""
from __future__ import annotations

import os
import signal
import time

import pytest

from dakia_prefork.shm import ControlBlock, CounterTable, RangeLock, Segment, sweep_stale
from dakia_prefork.shm.segment import segment_name, state_tag


@pytest.fixture
def segment(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "test"),
                  CounterTable.size_for(64), create=True)
    yield seg
    seg.unlink()
    seg.close()


def test_counters_are_shared_and_exact_across_processes(segment):
    table = CounterTable(segment)
    slot = table.slot_for("gw/up")
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            child_table = CounterTable(segment)
            for _ in range(2000):
                child_table.fetch_add(child_table.slot_for("gw/up"))
            os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert table.value(slot) == 8000


def test_slots_are_stable_and_distinct(segment):
    table = CounterTable(segment)
    names = [f"gw/up{i}" for i in range(40)]
    slots = [table.slot_for(n) for n in names]
    assert len(set(slots)) == 40
    assert [table.slot_for(n) for n in names] == slots


def test_full_table_returns_none(segment):
    table = CounterTable(segment)
    for i in range(64):
        assert table.slot_for(f"n{i}") is not None
    assert table.slot_for("one-too-many") is None


def test_lock_held_by_a_killed_process_is_released(segment):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        RangeLock(segment.fd, 7).acquire_blocking()
        os.write(write_fd, b"x")
        time.sleep(60)
        os._exit(0)
    assert os.read(read_fd, 1) == b"x"
    lock = RangeLock(segment.fd, 7)
    assert not lock.try_acquire()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert lock.try_acquire()
    lock.release()


def test_control_block_records(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "control"), ControlBlock.SIZE,
                  create=True)
    try:
        control = ControlBlock(seg)
        control.initialise(os.getpid())
        control.publish_version(3)
        control.boot(2, 1234, 5, 1, 3)
        control.beat(2, 17)
        control.set_ready(True)
        assert control.valid and control.config_version == 3 and control.ready
        [record] = control.records()
        assert (record.record, record.slot, record.generation, record.pid, record.state,
                record.requests) == (2, 5, 1, 1234, "booting", 17)
        control.clear(2)
        assert control.records() == []
    finally:
        seg.unlink()
        seg.close()


def test_control_block_gauges_and_master_counters(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "control"), ControlBlock.SIZE,
                  create=True)
    try:
        control = ControlBlock(seg)
        control.initialise(os.getpid())
        control.boot(0, 99, 0, 1, 1)
        control.set_connections(0, 12)
        control.beat(0, 40)
        [record] = control.records()
        assert (record.connections, record.requests) == (12, 40)
        control.boot(0, 100, 0, 2, 1)           # a replacement starts with no connections
        assert control.record(0).connections == 0
        control.count_reload(True)
        control.count_reload(True)
        control.count_reload(False)
        control.count_worker_restart()
        assert control.reloads == (2, 1) and control.worker_restarts == 1
        control.initialise(os.getpid())
        assert control.reloads == (0, 0) and control.worker_restarts == 0
    finally:
        seg.unlink()
        seg.close()


def test_sweep_removes_only_dead_masters_segments(tmp_path):
    state = str(tmp_path)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    dead = Segment(segment_name(state, pid, "control"), 4096, create=True)
    alive = Segment(segment_name(state, os.getpid(), "control"), 4096, create=True)
    try:
        removed = sweep_stale(state)
        assert removed == [dead.name]
        assert os.path.exists("/dev/shm" + alive.name)
        assert f"dakia-{state_tag(state)}-" in alive.name
    finally:
        for seg in (dead, alive):
            seg.unlink()
            seg.close()
