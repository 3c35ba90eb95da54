"""What a run prints and writes: the tables, the JSON result and the PNG chart."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bench_config import SCENARIOS
from bench_targets import RPS, Key, Memory, Outcome, Summary, ratio


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _met(outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    return {True: "met", False: "MISSED", None: "n/a"}[outcome.met]


def _rps_outcome(outcomes: Sequence[Outcome], key: Key) -> Outcome | None:
    for outcome in outcomes:
        target = outcome.target
        if (target.engine, target.scenario) == key and target.metric == RPS:
            return outcome
    return None


def _target_text(outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    return f"≥ {outcome.target.bound:.2f} x {outcome.target.reference}"


def scenario_table(summaries: Mapping[Key, Summary], outcomes: Sequence[Outcome],
                   rss_after_load: Mapping[Key, float]) -> str:
    """One row per (engine, scenario): medians, failures, ratios to the floor, req/s target."""
    head = (f"{'engine':<10} {'scenario':<11} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'failed':>6} {'x floor':>7} {'p99 x fl':>8} {'RSS MB':>6}  "
            f"{'target (req/s)':<17} {'met':<6}")
    lines = [head, "-" * len(head)]
    for key in sorted(summaries, key=_order):
        engine, scenario = key
        row = summaries[key]
        floor = summaries.get((engine, "floor"))
        outcome = _rps_outcome(outcomes, key)
        lines.append(
            f"{engine:<10} {scenario:<11} {row.rps:>8,.0f} {row.p50_ms:>7.2f} "
            f"{row.p99_ms:>7.2f} {row.errors:>6} "
            f"{_num(ratio(row.rps, floor.rps if floor else None), '.2f'):>7} "
            f"{_num(ratio(row.p99_ms, floor.p99_ms if floor else None), '.2f'):>8} "
            f"{_num(rss_after_load.get(key), '.1f'):>6}  "
            f"{_target_text(outcome):<17} {_met(outcome):<6}")
    return "\n".join(lines)


def _order(key: Key) -> tuple[str, int]:
    engine, scenario = key
    return engine, SCENARIOS.index(scenario) if scenario in SCENARIOS else len(SCENARIOS)


def _measured_text(outcome: Outcome) -> str:
    unit = " MB" if "rss" in outcome.target.metric else (
        " ms" if outcome.target.metric == "p99_ms" else " req/s")
    value = _num(outcome.value, ",.1f" if unit != " req/s" else ",.0f")
    if outcome.reference_value is None:
        return f"{value}{unit}"
    reference = _num(outcome.reference_value, ",.1f" if unit != " req/s" else ",.0f")
    return (f"{value}{unit} / {reference} = {_num(outcome.ratio, '.2f')} "
            f"(limit {_num(outcome.limit, ',.1f')})")


def targets_table(outcomes: Sequence[Outcome]) -> str:
    """Every target: met or not, with the measured value (and the ratio it is judged by)."""
    lines = ["Targets (issue 8):"]
    for outcome in outcomes:
        note = f"  [{outcome.note}]" if outcome.note else ""
        lines.append(f"  {_met(outcome):<6} {outcome.target.label():<56} "
                     f"{_measured_text(outcome)}{note}")
    return "\n".join(lines)


def memory_lines(memory: Mapping[str, Memory]) -> str:
    lines = ["Worker VmRSS of the bare gateway (MB):"]
    for engine, m in sorted(memory.items()):
        held = f"holding {m.held:,} idle keep-alive {_num(m.holding_mb, '.1f')}"
        note = f"  [{m.note}]" if m.note else ""
        lines.append(f"  {engine:<10} idle before load {_num(m.idle_mb, '.1f')}, "
                     f"after load {_num(m.after_load_mb, '.1f')}, {held}{note}")
    return "\n".join(lines)


# -- machine and code identity --------------------------------------------------------------
def _run(command: Sequence[str]) -> str | None:
    """stdout of ``command`` run from / (so that no package is imported from the cwd)."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=20,
                              cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_identity(directory: str) -> dict[str, Any]:
    commit = _run(["git", "-C", directory, "rev-parse", "HEAD"])
    dirty = _run(["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"])
    return {"dir": directory, "commit": commit, "dirty": bool(dirty) if commit else None}


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "load_average": list(os.getloadavg())}


def master_python(master: str) -> str | None:
    """The interpreter of a ``dakia-master`` console script (its shebang)."""
    try:
        with open(master, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
    except OSError:
        return None
    return first[2:].split()[0] if first.startswith("#!") else None


def gateway_identity(master: str) -> dict[str, Any]:
    """Which code the measured gateways run: version and the git commit of its package."""
    info: dict[str, Any] = {"master": master, "version": _run([master, "version"])}
    python = master_python(master)
    package = python and _run([python, "-c", "import os, dakia_prefork; "
                               "print(os.path.dirname(dakia_prefork.__file__))"])
    info["git"] = git_identity(package) if package else None
    return info


# -- files ----------------------------------------------------------------------------------
def write_json(path: str, result: Mapping[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
