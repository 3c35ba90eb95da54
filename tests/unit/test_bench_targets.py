"""tools/bench: medians of rounds and issue 8's targets judged on them (no load)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "bench"))

from bench_load import LoadResult  # noqa: E402
from bench_report import scenario_table, targets_table  # noqa: E402
from bench_targets import (P99, RPS, RSS_AFTER_LOAD, RSS_HOLDING, Memory,  # noqa: E402
                           Summary, Target, evaluate, evaluate_all, issue8_targets,
                           summarize, verdict)


def summary(rps: float, p99: float = 5.0, errors: int = 0) -> Summary:
    return Summary(rps=rps, p50_ms=p99 / 2, p99_ms=p99, rounds=3, errors=errors)


def test_summarize_takes_medians_and_sums_failures() -> None:
    rounds = [LoadResult(100.0, 1.0, 9.0, 500), LoadResult(300.0, 3.0, 5.0, 1500, non_2xx=2),
              LoadResult(200.0, 2.0, 7.0, 1000, socket_errors=1)]
    assert summarize(rounds) == Summary(rps=200.0, p50_ms=2.0, p99_ms=7.0, rounds=3, errors=3)


def test_issue8_lists_every_target_for_both_engines() -> None:
    labels = [t.label() for t in issue8_targets(["h11", "httptools"])]
    assert "httptools bare req/s ≥ 0.85 x floor" in labels
    assert "httptools chain req/s ≥ 0.75 x floor" in labels
    assert "h11 bare req/s ≥ 1.25 x floor" in labels
    assert "h11 chain req/s ≥ 1.00 x floor" in labels
    for engine in ("h11", "httptools"):
        assert f"{engine} bare p99 ≤ 1.20 x floor" in labels
        assert f"{engine} chain p99 ≤ 1.20 x floor" in labels
        assert f"{engine} routes1000 req/s ≥ 0.90 x bare" in labels
        assert f"{engine} bare worker RSS after load ≤ 60 MB" in labels
        assert f"{engine} bare worker RSS holding 5,000 idle ≤ 60 MB" in labels
    assert len(labels) == 14


def test_the_holding_target_names_the_connections_held() -> None:
    labels = [t.label() for t in issue8_targets(["h11"], idle_connections=500)]
    assert labels[-1] == "h11 bare worker RSS holding 500 idle ≤ 60 MB"


def test_ratio_targets_multiply_the_reference_of_the_same_engine() -> None:
    target = Target("httptools", "bare", RPS, ">=", 0.85, "floor")
    summaries = {("httptools", "floor"): summary(10_000), ("h11", "floor"): summary(1_000)}
    met = evaluate(target, {**summaries, ("httptools", "bare"): summary(8_500)}, {})
    assert (met.met, met.limit, met.ratio) == (True, pytest.approx(8_500), pytest.approx(0.85))
    missed = evaluate(target, {**summaries, ("httptools", "bare"): summary(8_499)}, {})
    assert missed.met is False


def test_p99_targets_are_upper_bounds() -> None:
    target = Target("h11", "chain", P99, "<=", 1.2, "floor")
    floor = {("h11", "floor"): summary(5_000, p99=10.0)}
    assert evaluate(target, {**floor, ("h11", "chain"): summary(6_000, p99=12.0)}, {}).met
    assert not evaluate(target, {**floor, ("h11", "chain"): summary(6_000, p99=12.1)}, {}).met


def test_a_scenario_or_reference_with_failed_requests_misses_its_target() -> None:
    target = Target("h11", "routes1000", RPS, ">=", 0.9, "bare")
    failing = evaluate(target, {("h11", "bare"): summary(1_000),
                                ("h11", "routes1000"): summary(5_000, errors=4)}, {})
    assert failing.met is False and "4 failed requests in routes1000" in failing.note
    reference = evaluate(target, {("h11", "bare"): summary(1_000, errors=1),
                                  ("h11", "routes1000"): summary(5_000)}, {})
    assert reference.met is False and "bare" in reference.note


def test_unmeasured_targets_are_neither_met_nor_missed() -> None:
    target = Target("h11", "bare", RPS, ">=", 1.25, "floor")
    assert evaluate(target, {}, {}).met is None
    no_floor = evaluate(target, {("h11", "bare"): summary(1_000)}, {})
    assert (no_floor.met, no_floor.value, no_floor.note) == (None, 1_000, "floor not measured")


def test_memory_targets_are_absolute_and_need_every_connection_held() -> None:
    after = Target("h11", "bare", RSS_AFTER_LOAD, "<=", 60.0)
    holding = Target("h11", "bare", RSS_HOLDING, "<=", 60.0, connections=5000)
    memory = {"h11": Memory(idle_mb=36.0, after_load_mb=40.0, holding_mb=59.0, held=5000)}
    assert evaluate(after, {}, memory).met is True
    assert evaluate(holding, {}, memory).met is True
    memory["h11"].held = 4000
    partial = evaluate(holding, {}, memory)
    assert partial.met is False and "4,000 of 5,000" in partial.note
    memory["h11"].holding_mb = None
    memory["h11"].note = "--idle-connections 0: not measured"
    skipped = evaluate(holding, {}, memory)
    assert (skipped.met, skipped.note) == (None, "--idle-connections 0: not measured")
    assert evaluate(after, {}, {}).met is None


def test_verdict_counts_and_tables_show_every_target() -> None:
    summaries = {("httptools", "floor"): summary(10_000, p99=4.0),
                 ("httptools", "bare"): summary(9_000, p99=4.4),
                 ("httptools", "chain"): summary(7_000, p99=6.0)}
    outcomes = evaluate_all(issue8_targets(["httptools"]), summaries, {})
    result = verdict(outcomes)
    assert (result.met, result.missed, result.unmeasured) == (2, 2, 3)
    assert result.missed_labels == ["httptools chain req/s ≥ 0.75 x floor",
                                    "httptools chain p99 ≤ 1.20 x floor"]
    table = targets_table(outcomes)
    assert len(table.splitlines()) == 1 + len(outcomes)
    assert "9,000 req/s / 10,000 = 0.90" in table
    rows = scenario_table(summaries, outcomes, {("httptools", "bare"): 37.25}).splitlines()
    assert [r.split()[1] for r in rows[2:]] == ["floor", "bare", "chain"]
    assert "37.2" in rows[3] and rows[3].rstrip().endswith("met")
    assert rows[4].rstrip().endswith("MISSED")
