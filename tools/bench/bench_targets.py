"""Medians of the rounds and issue 8's targets, evaluated against them (pure, no I/O).

A target compares one measured value of an engine with a bound: either a factor times
another scenario's value on the same engine (``httptools bare req/s >= 0.85 x floor``) or
an absolute bound (``worker RSS <= 60 MB``). A target whose numbers were not measured (the
scenario was not selected, a gateway did not start) is neither met nor missed; one whose
scenario or reference had failed requests (non-2xx, socket errors) is missed, since its
number is not a valid measurement.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench_load import LoadResult

RPS = "rps"
P99 = "p99_ms"
RSS_AFTER_LOAD = "rss_after_load_mb"
RSS_HOLDING = "rss_holding_mb"
LOAD_METRICS = (RPS, P99)
RSS_LIMIT_MB = 60.0
IDLE_CONNECTIONS = 5000

Op = Literal[">=", "<="]
SYMBOL = {">=": "≥", "<=": "≤"}
Key = tuple[str, str]
"""(engine, scenario)"""


@dataclass(frozen=True)
class Summary:
    """The medians of one scenario's rounds, with failures summed over all rounds."""

    rps: float
    p50_ms: float
    p99_ms: float
    rounds: int
    errors: int

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass
class Memory:
    """Worker VmRSS (MB) of one engine's bare gateway at three moments."""

    idle_mb: float | None = None
    after_load_mb: float | None = None
    holding_mb: float | None = None
    held: int = 0
    wanted: int = IDLE_CONNECTIONS
    note: str = ""

    def value(self, metric: str) -> float | None:
        return {RSS_AFTER_LOAD: self.after_load_mb, RSS_HOLDING: self.holding_mb}[metric]


@dataclass(frozen=True)
class Target:
    engine: str
    scenario: str
    metric: str
    op: Op
    bound: float
    reference: str | None = None
    """Scenario of the same engine that ``bound`` multiplies; None: ``bound`` is absolute."""
    connections: int = 0
    """For RSS_HOLDING: the idle keep-alive connections held while it is read."""

    def label(self) -> str:
        what = {RPS: "req/s", P99: "p99", RSS_AFTER_LOAD: "worker RSS after load",
                RSS_HOLDING: f"worker RSS holding {self.connections:,} idle"}[self.metric]
        limit = (f"{self.bound:.2f} x {self.reference}" if self.reference
                 else f"{self.bound:g} MB")
        return f"{self.engine} {self.scenario} {what} {SYMBOL[self.op]} {limit}"


@dataclass(frozen=True)
class Outcome:
    target: Target
    value: float | None
    reference_value: float | None = None
    limit: float | None = None
    met: bool | None = None
    """None: not measured."""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.reference_value)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.target), "label": self.target.label(), "value": self.value,
                "reference_value": self.reference_value, "limit": self.limit,
                "ratio": self.ratio, "met": self.met, "note": self.note}


def issue8_targets(engines: Iterable[str],
                   idle_connections: int = IDLE_CONNECTIONS) -> list[Target]:
    """Every target of issue 8, point 4, for the engines measured (issue 8 holds 5,000)."""
    rps_floor = {"httptools": {"bare": 0.85, "chain": 0.75}, "h11": {"bare": 1.25, "chain": 1.0}}
    targets: list[Target] = []
    for engine in engines:
        for scenario, factor in rps_floor.get(engine, {}).items():
            targets.append(Target(engine, scenario, RPS, ">=", factor, "floor"))
        targets += [Target(engine, "bare", P99, "<=", 1.2, "floor"),
                    Target(engine, "chain", P99, "<=", 1.2, "floor"),
                    Target(engine, "routes1000", RPS, ">=", 0.9, "bare"),
                    Target(engine, "bare", RSS_AFTER_LOAD, "<=", RSS_LIMIT_MB),
                    Target(engine, "bare", RSS_HOLDING, "<=", RSS_LIMIT_MB,
                           connections=idle_connections)]
    return targets


def summarize(rounds: Sequence[LoadResult]) -> Summary:
    """Medians of req/s, p50 and p99 over ``rounds`` (not empty); errors are summed."""
    return Summary(rps=statistics.median(r.rps for r in rounds),
                   p50_ms=statistics.median(r.p50_ms for r in rounds),
                   p99_ms=statistics.median(r.p99_ms for r in rounds),
                   rounds=len(rounds), errors=sum(r.errors for r in rounds))


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def holds(value: float, op: Op, limit: float) -> bool:
    return value >= limit if op == ">=" else value <= limit


def _evaluate_load(target: Target, summaries: Mapping[Key, Summary]) -> Outcome:
    measured = summaries.get((target.engine, target.scenario))
    if measured is None:
        return Outcome(target, None, note=f"{target.scenario} not measured")
    value = measured.value(target.metric)
    reference_value = None
    limit = target.bound
    if target.reference is not None:
        reference = summaries.get((target.engine, target.reference))
        if reference is None:
            return Outcome(target, value, note=f"{target.reference} not measured")
        reference_value = reference.value(target.metric)
        limit = target.bound * reference_value
        if reference.errors:
            return Outcome(target, value, reference_value, limit, False,
                           f"{reference.errors} failed requests in {target.reference}")
    if measured.errors:
        return Outcome(target, value, reference_value, limit, False,
                       f"{measured.errors} failed requests in {target.scenario}")
    return Outcome(target, value, reference_value, limit, holds(value, target.op, limit))


def _evaluate_memory(target: Target, memory: Mapping[str, Memory]) -> Outcome:
    measured = memory.get(target.engine)
    value = measured.value(target.metric) if measured else None
    if measured is None or value is None:
        note = measured.note if measured and measured.note else "not measured"
        return Outcome(target, None, note=note)
    if target.metric == RSS_HOLDING and measured.held < measured.wanted:
        return Outcome(target, value, limit=target.bound, met=False,
                       note=f"only {measured.held:,} of {measured.wanted:,} connections held")
    return Outcome(target, value, limit=target.bound,
                   met=holds(value, target.op, target.bound))


def evaluate(target: Target, summaries: Mapping[Key, Summary],
             memory: Mapping[str, Memory]) -> Outcome:
    if target.metric in LOAD_METRICS:
        return _evaluate_load(target, summaries)
    return _evaluate_memory(target, memory)


def evaluate_all(targets: Iterable[Target], summaries: Mapping[Key, Summary],
                 memory: Mapping[str, Memory]) -> list[Outcome]:
    return [evaluate(target, summaries, memory) for target in targets]


@dataclass(frozen=True)
class Verdict:
    met: int = 0
    missed: int = 0
    unmeasured: int = 0
    missed_labels: list[str] = field(default_factory=list)


def verdict(outcomes: Iterable[Outcome]) -> Verdict:
    outcomes = list(outcomes)
    missed = [o.target.label() for o in outcomes if o.met is False]
    return Verdict(met=sum(1 for o in outcomes if o.met), missed=len(missed),
                   unmeasured=sum(1 for o in outcomes if o.met is None),
                   missed_labels=missed)
