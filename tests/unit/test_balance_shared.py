"""Node selection across processes: rotations, counts, latency and health shared by workers."""
from __future__ import annotations

import os
import random
import signal
from collections import Counter
from typing import Callable

import pytest

from dakia_prefork.balance import make_balancer
from dakia_prefork.http.upstream import Node
from dakia_prefork.shm import CounterTable, Segment
from dakia_prefork.shm.nodestats import NodeStats
from dakia_prefork.shm.segment import segment_name
from children import fork, kill, wait_ok

RECORDS = 8


@pytest.fixture
def shared(tmp_path):
    counters_seg = Segment(segment_name(str(tmp_path), os.getpid(), "counters"),
                           CounterTable.size_for(64), create=True)
    nodes_seg = Segment(segment_name(str(tmp_path), os.getpid(), "nodes"),
                        NodeStats.size_for(64, RECORDS), create=True)
    NodeStats.format(nodes_seg, RECORDS)
    master = NodeStats(nodes_seg)
    for record in range(4):
        master.note_record(record)
    yield counters_seg, nodes_seg
    for seg in (counters_seg, nodes_seg):
        seg.unlink()
        seg.close()


def worker_balancer(shared, algorithm: str, record: int, weights=(1, 1, 1), **kwargs):
    """What a worker owning ``record`` would build for upstream ``gw/app``."""
    counters_seg, nodes_seg = shared
    nodes = [Node(("tcp", f"10.0.0.{i + 1}", 8080), w) for i, w in enumerate(weights)]
    return make_balancer(algorithm, "gw/app", nodes, CounterTable(counters_seg),
                         NodeStats(nodes_seg, record=record), **kwargs)


def hold(fd: int) -> None:
    """Tell the parent we are ready, then wait to be killed (requests stay in flight)."""
    os.write(fd, b"x")
    signal.pause()


def test_swrr_order_is_global_across_two_processes(shared):
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()

    def child() -> None:
        balancer = worker_balancer(shared, "weighted", 1, (5, 1, 1))
        while os.read(child_reads, 1) == b"p":
            os.write(child_writes, bytes([balancer.nodes.index(balancer.pick())]))

    pid = fork(child)
    balancer = worker_balancer(shared, "weighted", 0, (5, 1, 1))
    sequence = []
    for turn in range(14):                  # the two processes take turns
        if turn % 2 == 0:
            sequence.append(balancer.nodes.index(balancer.pick()))
        else:
            os.write(parent_writes, b"p")
            sequence.append(os.read(parent_reads, 1)[0])
    os.write(parent_writes, b"q")
    wait_ok(pid)
    assert sequence == [0, 0, 1, 0, 2, 0, 0] * 2


@pytest.mark.parametrize("algorithm,expected", [("weighted", [1000, 200, 200]),
                                                ("round_robin", [467, 467, 466])])
def test_concurrent_processes_share_one_rotation(shared, algorithm, expected):
    read_fd, write_fd = os.pipe()

    def body(record: int) -> None:
        balancer = worker_balancer(shared, algorithm, record, (5, 1, 1))
        counts = Counter(balancer.nodes.index(balancer.pick()) for _ in range(700))
        os.write(write_fd, b"".join(counts[i].to_bytes(2, "little") for i in range(3)))

    children = [fork(lambda r=r: body(r)) for r in (1, 2)]
    for pid in children:
        wait_ok(pid)
    total = [0, 0, 0]
    for _ in children:
        data = os.read(read_fd, 6)
        for i in range(3):
            total[i] += int.from_bytes(data[2 * i:2 * i + 2], "little")
    assert sorted(total, reverse=True) == sorted(expected, reverse=True)
    assert sum(total) == 1400


def test_least_connection_counts_requests_in_flight_in_every_worker(shared):
    read_fd, write_fd = os.pipe()

    def loads(record: int, counts: dict[int, int]) -> Callable[[], None]:
        def body() -> None:
            balancer = worker_balancer(shared, "least_connection", record)
            for index, count in counts.items():
                for _ in range(count):
                    balancer.begin(balancer.nodes[index])
            hold(write_fd)
        return body

    fork(loads(1, {0: 3}))
    second = fork(loads(2, {0: 2, 1: 1}))
    assert os.read(read_fd, 1) + os.read(read_fd, 1) == b"xx"
    balancer = worker_balancer(shared, "least_connection", 0)
    a, b, c = balancer.nodes
    assert balancer.pick() is c                        # a: 5, b: 1, c: 0
    balancer.begin(c)
    balancer.begin(c)
    assert balancer.pick() is b                        # a: 5, b: 1, c: 2
    # The second worker dies; the master reaps it and clears its record.
    kill(second)
    NodeStats(shared[1]).clear_record(2)
    assert [s.active() for s in balancer.states] == [3, 0, 2]
    assert balancer.pick() is b


def test_p2c_sees_the_load_of_other_workers(shared):
    read_fd, write_fd = os.pipe()

    def body() -> None:
        balancer = worker_balancer(shared, "p2c", 1)
        for _ in range(4):
            balancer.begin(balancer.nodes[2])
        hold(write_fd)

    fork(body)
    assert os.read(read_fd, 1) == b"x"
    balancer = worker_balancer(shared, "p2c", 0, rng=random.Random(1))
    counts = Counter(balancer.nodes.index(balancer.pick()) for _ in range(2000))
    assert counts[2] == 0 and counts[0] > 700 and counts[1] > 700


def test_latency_measured_by_one_worker_steers_another(shared):
    def body() -> None:
        balancer = worker_balancer(shared, "least_response_time", 1)
        for node, seconds in zip(balancer.nodes, (0.200, 0.020, 0.090)):
            for _ in range(3):
                balancer.begin(node)
                balancer.end(node, seconds, True)

    wait_ok(fork(body))
    balancer = worker_balancer(shared, "least_response_time", 0)
    assert {balancer.pick() for _ in range(10)} == {balancer.nodes[1]}


def test_an_ejection_by_one_worker_is_honoured_by_all(shared):
    def body() -> None:
        balancer = worker_balancer(shared, "round_robin", 1)
        bad = balancer.nodes[0]
        for _ in range(3):
            balancer.begin(bad)
            balancer.end(bad, 0.0, False)

    wait_ok(fork(body))
    balancer = worker_balancer(shared, "round_robin", 0)
    assert balancer.nodes[0] not in {balancer.pick() for _ in range(30)}


def test_nodes_found_unhealthy_by_the_checker_are_skipped_when_checks_run(shared):
    def checker() -> None:
        stats = NodeStats(shared[1])
        index = stats.index_for("gw/app/10.0.0.2:8080")
        for now in (1.0, 2.0, 3.0):
            stats.record_check(index, False, 2, 3, now)

    wait_ok(fork(checker))
    checked = worker_balancer(shared, "ip_hash", 0, active_health=True)
    unchecked = worker_balancer(shared, "ip_hash", 0, active_health=False)
    assert "10.0.0.2:8080" not in {checked.pick(f"198.51.100.{i}").label for i in range(200)}
    assert "10.0.0.2:8080" in {unchecked.pick(f"198.51.100.{i}").label for i in range(200)}
