"""Node selection in one process: the math of every algorithm, availability, passive health."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from dakia_prefork.balance import (ALGORITHMS, HashRing, PassiveHealth, RoundRobin,
                                   make_balancer, swrr_cycle)
from dakia_prefork.http.upstream import Node
from dakia_prefork.shm.nodestats import EWMA_HALF_LIFE


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def nodes(*weights: int) -> list[Node]:
    return [Node(("tcp", f"10.0.0.{i + 1}", 8080), weight) for i, weight in enumerate(weights)]


def picks(balancer, count: int, **kwargs) -> list[int]:
    return [balancer.nodes.index(balancer.pick(**kwargs)) for _ in range(count)]


def test_every_documented_algorithm_is_built_and_unknown_ones_are_refused():
    assert set(ALGORITHMS) == {"round_robin", "weighted", "least_connection",
                               "least_response_time", "ip_hash", "url_hash", "random", "p2c"}
    for algorithm in ALGORITHMS:
        balancer = make_balancer(algorithm, "gw/app", nodes(1, 1))
        assert balancer.algorithm == algorithm
        assert balancer.pick("k") in balancer.nodes
    assert make_balancer("ip_hash", "gw/app", nodes(1)).key_kind == "ip"
    assert make_balancer("url_hash", "gw/app", nodes(1)).key_kind == "url"
    assert make_balancer("p2c", "gw/app", nodes(1)).key_kind is None
    with pytest.raises(ValueError, match="node_selection_algorithm"):
        make_balancer("fastest", "gw/app", nodes(1))
    with pytest.raises(ValueError):
        make_balancer("round_robin", "gw/app", [])


def test_round_robin_as_the_worker_builds_it_today():
    balancer = RoundRobin("gw/app", nodes(1, 1, 1), None)
    assert picks(balancer, 7) == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_passes_over_unusable_nodes_and_says_none_when_none_is_left():
    balancer = make_balancer("round_robin", "gw/app", nodes(1, 1, 1))
    b = balancer.nodes[1]
    assert picks(balancer, 6, exclude={b}) == [0, 2, 2, 0, 0, 2]
    assert balancer.pick(exclude=set(balancer.nodes)) is None


def test_swrr_sequence_is_nginx_s():
    assert swrr_cycle([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]
    assert swrr_cycle([10, 2, 2]) == [0, 0, 1, 0, 2, 0, 0]        # divided by the gcd
    assert swrr_cycle([1, 1, 1]) == [0, 1, 2]
    balancer = make_balancer("weighted", "gw/app", nodes(5, 1, 1))
    assert picks(balancer, 14) == [0, 0, 1, 0, 2, 0, 0] * 2


def test_swrr_with_huge_weights_keeps_the_proportions_in_a_bounded_cycle():
    cycle = swrr_cycle([1_000_000, 250_001, 1])
    assert len(cycle) <= 4096 + 3
    counts = Counter(cycle)
    assert counts[0] / counts[1] == pytest.approx(4.0, rel=0.01) and counts[2] == 1


def test_weighted_spreads_a_missing_nodes_turns_by_weight():
    balancer = make_balancer("weighted", "gw/app", nodes(4, 2, 1), rng=random.Random(7))
    heavy = balancer.nodes[0]
    counts = Counter(picks(balancer, 7000, exclude={heavy}))
    assert counts[0] == 0
    assert counts[1] / counts[2] == pytest.approx(2.0, rel=0.1)


def test_consistent_hashing_remaps_about_one_nth_and_keeps_the_other_keys():
    keys = [f"198.51.100.{i % 256}/{i}" for i in range(10_000)]
    five = nodes(1, 1, 1, 1, 1)
    before = make_balancer("ip_hash", "gw/app", five)
    placed = {key: before.pick(key).label for key in keys}
    removed = five[2]
    after = make_balancer("ip_hash", "gw/app", [n for n in five if n is not removed])
    moved = [key for key in keys if after.pick(key).label != placed[key]]
    assert {placed[key] for key in moved} == {removed.label}      # only its keys moved
    assert len(moved) / len(keys) == pytest.approx(1 / 5, abs=0.05)
    # A sixth node takes about 1/6 of the keys, all of them onto itself.
    six = five + [Node(("tcp", "10.0.0.99", 8080))]
    grown = make_balancer("url_hash", "gw/app", six)
    taken = [key for key in keys if grown.pick(key).label != placed[key]]
    assert {grown.pick(key).label for key in taken} == {"10.0.0.99:8080"}
    assert len(taken) / len(keys) == pytest.approx(1 / 6, abs=0.05)


def test_consistent_hashing_shares_follow_weight_and_are_even():
    balancer = make_balancer("url_hash", "gw/app", nodes(2, 1, 1))
    counts = Counter(balancer.nodes.index(balancer.pick(f"/item/{i}")) for i in range(20_000))
    assert counts[0] / 20_000 == pytest.approx(0.5, abs=0.06)
    assert counts[1] / 20_000 == pytest.approx(0.25, abs=0.06)


def test_an_ejected_or_excluded_node_s_keys_go_where_its_removal_would_send_them():
    three = nodes(1, 1, 1)
    full = make_balancer("ip_hash", "gw/app", three)
    without = make_balancer("ip_hash", "gw/app", [three[0], three[2]])
    keys = [f"203.0.113.{i}" for i in range(256)]
    for key in keys:
        assert full.pick(key, exclude={three[1]}).label == without.pick(key).label
    assert full.pick("x", exclude=set(three)) is None
    assert full.pick(None) in three                # no key: weighted random


def test_ring_walk_meets_each_node_once():
    ring = HashRing(["a:1", "b:1", "a:1"], [1, 2, 1])      # the same address twice
    assert len(ring) == 4 * 160
    assert sorted(ring.walk("anything")) == [0, 1, 2]


def test_least_connection_takes_the_least_loaded_per_weight():
    balancer = make_balancer("least_connection", "gw/app", nodes(1, 1, 2))
    a, b, c = balancer.nodes
    for node, count in ((a, 3), (b, 1), (c, 4)):
        for _ in range(count):
            balancer.begin(node)
    assert balancer.pick() is b                       # 1 < 4/2 < 3
    balancer.end(b, 0.01, True)
    assert balancer.pick() is b
    for _ in range(3):
        balancer.begin(b)
    assert balancer.pick() is c                       # 2.0 < 3
    # Ties take turns.
    even = make_balancer("least_connection", "gw/app", nodes(1, 1, 1))
    assert sorted(picks(even, 3)) == [0, 1, 2]


def test_least_response_time_measures_new_nodes_first_then_follows_latency():
    clock = Clock()
    balancer = make_balancer("least_response_time", "gw/app", nodes(1, 1, 1), clock=clock)
    a, b, c = balancer.nodes
    for node, seconds in ((a, 0.050), (b, 0.010)):
        balancer.begin(node)
        balancer.end(node, seconds, True)
    assert balancer.pick() is c                       # no sample yet: first
    balancer.begin(c)
    balancer.end(c, 0.200, True)
    assert picks(balancer, 5) == [1] * 5              # b is the fastest
    # b slows down: its average moves toward the new latency and traffic moves to a.
    for _ in range(5):
        balancer.begin(b)
        balancer.end(b, 0.300, True)
    assert balancer.pick() is a
    # Load counts too: a busy fast node gives way to an idle one.
    for _ in range(4):
        balancer.begin(a)
    assert balancer.pick() is not a
    # A shunned node's average decays, so it is tried again after a while.
    for _ in range(4):
        balancer.end(a, 0.050, True)
    clock.now += 4 * EWMA_HALF_LIFE
    assert balancer.pick() is a
    clock.now += 10 * EWMA_HALF_LIFE
    balancer.begin(a)
    balancer.end(a, 0.050, True)
    assert balancer.pick() in (b, c)


def test_p2c_never_picks_the_most_loaded_of_three():
    balancer = make_balancer("p2c", "gw/app", nodes(1, 1, 1), rng=random.Random(3))
    busy = balancer.nodes[0]
    for _ in range(5):
        balancer.begin(busy)
    counts = Counter(picks(balancer, 3000))
    assert counts[0] == 0 and counts[1] > 1000 and counts[2] > 1000
    assert make_balancer("p2c", "gw/app", nodes(1, 1)).pick(exclude=set()) is not None


def test_random_follows_weight():
    balancer = make_balancer("random", "gw/app", nodes(3, 1), rng=random.Random(11))
    counts = Counter(picks(balancer, 8000))
    assert counts[0] / 8000 == pytest.approx(0.75, abs=0.03)
    assert picks(balancer, 50, exclude={balancer.nodes[0]}) == [1] * 50


@pytest.mark.parametrize("algorithm", sorted(set(ALGORITHMS)))
def test_passive_ejection_and_recovery_with_a_fake_clock(algorithm):
    clock = Clock()
    balancer = make_balancer(algorithm, "gw/app", nodes(1, 1), clock=clock,
                             passive=PassiveHealth(max_failures=3, eject_seconds=10),
                             rng=random.Random(5))
    bad, good = balancer.nodes
    for expected in (False, False, True):
        balancer.begin(bad)
        assert balancer.end(bad, 0.0, False) is expected
    assert not balancer.usable(bad)
    assert all(balancer.pick(f"key-{i}") is good for i in range(50))
    assert balancer.pick("k", exclude={good}) is None      # nothing usable: the caller's 503
    clock.now += 10
    assert balancer.usable(bad)
    assert any(balancer.pick(f"key-{i}") is bad for i in range(50))
    balancer.begin(bad)
    assert balancer.end(bad, 0.0, False) is True            # one failure on probation
    clock.now += 10
    balancer.begin(bad)
    balancer.end(bad, 0.02, True)                           # a success: fully back
    balancer.begin(bad)
    assert balancer.end(bad, 0.0, False) is False


def test_an_outcome_that_says_nothing_about_the_node_is_not_counted():
    balancer = make_balancer("least_connection", "gw/app", nodes(1, 1),
                             passive=PassiveHealth(1, 10))
    node = balancer.nodes[0]
    balancer.begin(node)
    assert balancer.end(node, 0.0, None) is False
    assert balancer.usable(node) and balancer.states[0].active() == 0


def test_a_single_node_upstream_is_never_ejected():
    balancer = make_balancer("round_robin", "gw/app", nodes(1), passive=PassiveHealth(1, 10))
    only = balancer.nodes[0]
    balancer.begin(only)
    balancer.end(only, 0.0, False)
    assert balancer.pick() is only


def test_only_latency_balancers_record_latency_but_every_success_clears_failures():
    clock = Clock()
    rr = make_balancer("round_robin", "gw/app", nodes(1, 1), clock=clock,
                       passive=PassiveHealth(2, 10.0))
    first = rr.nodes[0]
    rr.begin(first)
    rr.end(first, 0.5, True)
    assert rr.states[0].latency(clock.now) is None          # not recorded: not used
    rr.begin(first)
    rr.end(first, 0.0, False)
    rr.begin(first)
    rr.end(first, 0.1, True)                                # clears the streak of one
    rr.begin(first)
    assert rr.end(first, 0.0, False) is False               # one in a row, not two
    lrt = make_balancer("least_response_time", "gw/app", nodes(1, 1), clock=clock)
    lrt.begin(lrt.nodes[0])
    lrt.end(lrt.nodes[0], 0.5, True)
    assert lrt.states[0].latency(clock.now) == 0.5
