"""What ``dakia-master status`` reports, and the same report as text.

``collect`` reads a running master's shared memory: its control block (the master's
header, one record per worker) and its node table (in-flight requests and health per
upstream node), with the upstreams of the config version the master publishes (from
``state_dir/config/v<N>.json``: the running version, not the file, which may have been
edited since). It only reads: no entry is claimed, nothing is written.

``render`` turns that report into the tables an operator reads; it is pure (the report and
the clock in, lines out), so its layout is unit-tested without a master. ``--json`` prints
the report itself: the text shows nothing the JSON lacks.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from .config.model import Address, address_of
from .config.store import ConfigStore
from .fleet.state import read_state
from .shm.control import ControlBlock
from .shm.nodestats import NodeStats
from .shm.segment import Segment, segment_name


# The algorithms whose balancers count requests in flight per node (balance/ classes with
# ``counts_in_flight``; a unit test keeps the two the same). The others skip that cost on
# the request path, so their nodes have no count to show.
COUNTING_ALGORITHMS = frozenset({"least_connection", "least_response_time", "p2c"})


# -- collecting -----------------------------------------------------------------------------
def collect(state_dir: str, pid: int) -> dict[str, Any]:
    """The report of master ``pid`` whose segments derive from ``state_dir``.

    Keys: ``master`` (always, with ``pid``), ``workers`` (always), ``helpers`` and
    ``upstreams`` (once the control block was read), ``last_reload`` (after the first
    reload), ``error`` (what could not be read)."""
    report: dict[str, Any] = {"master": {"pid": pid}, "workers": []}
    try:
        segment = Segment(segment_name(state_dir, pid, "control"), 0, create=False)
    except Exception as exc:  # noqa: BLE001 - report what we can
        report["error"] = f"cannot read the control block: {exc}"
        return report
    try:
        control = ControlBlock(segment)
        now = time.time()
        report["master"].update(_master(control, now))
        last = control.last_reload()
        if last is not None:
            report["last_reload"] = {key: last.get(key) for key in ("ok", "at", "version",
                                                                      "errors", "origin")}
        report["workers"] = _workers(control, now)
        report["helpers"] = [{"role": h.role, "pid": h.pid,
                              "uptime": round(now - h.started, 1)}
                             for h in control.helpers()]
        version = control.config_version
    finally:
        segment.close()
    source = config_source(state_dir, version)
    if source is not None:
        report["config_source"] = source
    report["upstreams"] = _upstreams(state_dir, pid, version, report)
    return report


def config_source(state_dir: str, version: int) -> dict[str, Any] | None:
    """On a node following etcd: the key, the etcd revision the served ``version`` was made
    from (the same on every node serving that document) and the follower's state."""
    store = ConfigStore(state_dir)
    etcd = store.read_meta(version).get("etcd")
    if not isinstance(etcd, dict):
        return None
    return {"etcd": {"key": etcd.get("key"), "revision": etcd.get("mod_revision"),
                     "follower": read_state(state_dir)}}


def _master(control: ControlBlock, now: float) -> dict[str, Any]:
    ok, failed = control.reloads
    return {"config_version": control.config_version,
            "started": round(control.master_started, 3),
            "uptime": round(now - control.master_started, 1),
            "ready": control.ready,
            "vacant_slots": sorted(control.vacant),
            "reloads": {"ok": ok, "failed": failed},
            "worker_restarts": control.worker_restarts}


def _workers(control: ControlBlock, now: float) -> list[dict[str, Any]]:
    return [{"record": r.record, "slot": r.slot, "generation": r.generation, "pid": r.pid,
             "state": r.state, "config_version": r.config_version,
             "uptime": round(now - r.started, 1), "requests": r.requests,
             "connections": r.connections, "websockets": r.websockets,
             "last_heartbeat": round(now - r.heartbeat, 1)}
            for r in sorted(control.records(), key=lambda r: (r.slot, r.generation))]


def _upstreams(state_dir: str, pid: int, version: int,
               report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per node of the published version; what cannot be read goes to
    ``report["error"]`` and leaves the list empty."""
    try:
        config = ConfigStore(state_dir).read(version)
    except (OSError, ValueError) as exc:
        report["error"] = f"cannot read config v{version}: {exc}"
        return []
    try:
        segment = Segment(segment_name(state_dir, pid, "nodes"), 0, create=False)
    except Exception as exc:  # noqa: BLE001 - the master is exiting, or an older one
        report["error"] = f"cannot read the node table: {exc}"
        return []
    try:
        return upstream_rows(config, NodeStats(segment), time.monotonic())
    finally:
        segment.close()


def upstream_rows(config: dict[str, Any], stats: NodeStats, now: float) -> list[dict[str, Any]]:
    """Every node of every upstream of ``config``, in config order, with its shared state.

    ``health``: the active checks' verdict (``healthy``, ``unhealthy``, ``unknown`` before
    the first verdict), None when the upstream has no ``health_check``. ``ejected_for``:
    seconds left of a passive ejection (0: not ejected). ``active``: requests in flight to
    the node from every worker, None when the upstream's algorithm does not count them
    (see COUNTING_ALGORITHMS). ``latency_ms``: the node table's response-head latency
    average, which only ``least_response_time`` keeps (None elsewhere, and before a first
    sample; the per-node latency of every algorithm is in the metrics). A node no worker
    has used yet has no entry: zeros."""
    rows = []
    for gateway in config["gateways"]:
        for upstream in gateway["upstreams"]:
            checked = upstream.get("health_check") is not None
            algorithm = upstream["traffic_distribution_policy"]["node_selection_algorithm"]
            counted = algorithm in COUNTING_ALGORITHMS
            for node in upstream["upstream_nodes"]:
                label = node_label(address_of(node["address"]))
                index = stats.find(f"{gateway['name']}/{upstream['name']}/{label}")
                row: dict[str, Any] = {"gateway": gateway["name"],
                                       "upstream": upstream["name"], "node": label,
                                       "algorithm": algorithm,
                                       "health": "unknown" if checked else None,
                                       "active": 0 if counted else None, "failures": 0,
                                       "ejected_for": 0.0, "latency_ms": None}
                if index is not None:
                    snap = stats.snapshot(index, now)
                    row.update(active=snap.active if counted else None, failures=snap.failures,
                               ejected_for=round(max(0.0, snap.ejected_until - now), 1),
                               latency_ms=None if snap.latency is None
                               else round(snap.latency * 1000, 2))
                    if checked:
                        row["health"] = snap.health
                rows.append(row)
    return rows


def node_label(address: Address) -> str:
    """A node's name as the workers and the health checker key its shared state
    (http/upstream.py ``Node.label``; a unit test keeps the two the same)."""
    kind, host, port = address
    if kind == "unix":
        return "unix:" + host
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# -- rendering ------------------------------------------------------------------------------
def render(report: dict[str, Any]) -> list[str]:
    """The report as the lines ``dakia-master status`` prints."""
    master = report["master"]
    lines = [_master_line(master)]
    if "reloads" in master:
        lines.append(f"reloads  {master['reloads']['ok']} ok, {master['reloads']['failed']} "
                     f"failed  worker restarts {master['worker_restarts']}")
    last = report.get("last_reload")
    if last is not None:
        lines.append(_last_reload_line(last))
    source = report.get("config_source")
    if source is not None:
        lines.append(_source_line(source["etcd"]))
    if master.get("vacant_slots"):
        lines.append("vacant slots (covered by the other workers): "
                     + ", ".join(map(str, master["vacant_slots"])))
    if "error" in report:
        lines.append(report["error"])
    lines += ["", "workers"]
    lines += table(("RECORD", "SLOT", "GEN", "PID", "STATE", "CONFIG", "REQUESTS", "CONNS",
                    "WS", "HEARTBEAT", "UPTIME"),
                   [(w["record"], w["slot"], w["generation"], w["pid"], w["state"],
                     f"v{w['config_version']}", w["requests"], w["connections"],
                     w["websockets"],
                     f"{w['last_heartbeat']:.1f}s", duration(w["uptime"]))
                    for w in report["workers"]])
    if report.get("helpers"):
        lines += ["", "helpers"]
        lines += table(("ROLE", "PID", "UPTIME"),
                       [(h["role"], h["pid"], duration(h["uptime"])) for h in report["helpers"]])
    if report.get("upstreams"):
        lines += ["", f"upstreams (config v{master.get('config_version', '?')})"]
        lines += table(("GATEWAY", "UPSTREAM", "NODE", "HEALTH", "PASSIVE", "IN-FLIGHT"),
                       [(u["gateway"], u["upstream"], u["node"], u["health"] or "-",
                         _passive(u), "-" if u["active"] is None else u["active"])
                        for u in report["upstreams"]])
    return lines


def _master_line(master: dict[str, Any]) -> str:
    if "ready" not in master:
        return f"master  pid {master['pid']}"
    state = "ready" if master["ready"] else "starting"
    return (f"master  pid {master['pid']}  {state}  config v{master['config_version']}  "
            f"uptime {duration(master['uptime'])}")


def _last_reload_line(last: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["at"] or 0))
    if last["ok"]:
        return f"last reload  {when}  ok: config v{last['version']}"
    errors = last["errors"] or ["?"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"last reload  {when}  refused: {errors[0]}{more}"


def _source_line(etcd: dict[str, Any]) -> str:
    follower = etcd.get("follower") or {}
    state = follower.get("state", "not started")
    if state != "following" and follower.get("error"):
        when = time.strftime("%H:%M:%S", time.localtime(follower.get("since") or 0))
        state = f"{state} since {when}: {follower['error']}"
    return (f"etcd     key {etcd.get('key')}  revision {etcd.get('revision')}  "
            f"follower {state}")


def _passive(row: dict[str, Any]) -> str:
    # No spaces in a cell: a script may split the table on whitespace.
    if row["ejected_for"] > 0:
        return f"ejected:{row['ejected_for']:.1f}s"
    if row["failures"]:
        return f"failures:{row['failures']}"
    return "ok"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Columns padded to their widest cell; numbers aligned right, text left. No rows:
    the header and ``(none)``."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, right in zip(values, widths, numeric)).rstrip()
    return [line(headers), *(line(row) for row in cells)] if cells else [line(headers),
                                                                        "(none)"]


def duration(seconds: float) -> str:
    """``42s``, ``5m07s``, ``3h12m``, ``2d04h``: the two largest units, for uptimes."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
