"""The PNG: req/s per scenario, one panel per engine, the floor and every req/s target drawn.

Needs matplotlib (the ``bench`` extra: ``pip install -e '.[bench]'``); without it the run
says so and writes everything but the chart.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from bench_config import SCENARIOS
from bench_targets import RPS, Key, Outcome, Summary

COLOURS = {"floor": "#9e9e9e", True: "#2e7d32", False: "#c62828", None: "#1565c0"}


def bar_colour(scenario: str, outcome: Outcome | None) -> str:
    if scenario == "floor":
        return COLOURS["floor"]
    return COLOURS[outcome.met if outcome else None]


def rps_outcomes(outcomes: Sequence[Outcome]) -> dict[Key, Outcome]:
    return {(o.target.engine, o.target.scenario): o for o in outcomes if o.target.metric == RPS}


def _panel(axes: Any, engine: str, summaries: Mapping[Key, Summary],
           targets: Mapping[Key, Outcome]) -> None:
    scenarios = [s for s in SCENARIOS if (engine, s) in summaries]
    values = [summaries[(engine, s)].rps for s in scenarios]
    colours = [bar_colour(s, targets.get((engine, s))) for s in scenarios]
    bars = axes.bar(scenarios, values, color=colours, width=0.6)
    axes.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, fontsize=8)
    floor = summaries.get((engine, "floor"))
    if floor is not None:
        axes.axhline(floor.rps, color=COLOURS["floor"], linestyle="--", linewidth=1,
                     label=f"floor {floor.rps:,.0f}")
    for x, scenario in enumerate(scenarios):
        outcome = targets.get((engine, scenario))
        if outcome is not None and outcome.limit is not None:
            axes.hlines(outcome.limit, x - 0.4, x + 0.4, colors="black", linewidth=2)
            axes.annotate(f"target ≥{outcome.target.bound:g}×{outcome.target.reference}",
                          (x, outcome.limit), xytext=(0, 2), textcoords="offset points",
                          fontsize=7, ha="center", va="bottom")
    axes.set_title(f"{engine}")
    axes.set_ylabel("requests/s (median)")
    axes.set_ylim(0, max(values + [o.limit or 0 for o in targets.values()
                                   if o.target.engine == engine]) * 1.18)
    if floor is not None:
        axes.legend(loc="upper right", fontsize=8)


def write_png(path: str, engines: Sequence[str], summaries: Mapping[Key, Summary],
              outcomes: Sequence[Outcome], title: str) -> str:
    """Draw and save the chart; returns what happened, for the run's output."""
    # matplotlib is in the bench extra, not in the test extra CI's mypy runs with: the
    # ignores cover its absence there and are harmless (unused-ignore) where it is installed.
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no PNG written"
    shown = [e for e in engines if any(k[0] == e for k in summaries)]
    if not shown:
        return "nothing measured: no PNG written"
    figure, panels = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4.5),
                                  squeeze=False)
    targets = rps_outcomes(outcomes)
    for axes, engine in zip(panels[0], shown):
        _panel(axes, engine, summaries, targets)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"
