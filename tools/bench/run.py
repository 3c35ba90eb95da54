"""Benchmark: the gateway (1 worker) against the reference floor of its parser engine.

Prints every speed and memory target of issue 8 as met or missed, with the numbers, from
one run. For each engine (h11, httptools) it starts, on random free ports:

- ``floor``: the reference floor (``floor_proxy.py`` for h11, ``floor_httptools.py`` for
  httptools, from ``--floors``, default ../shared/bench of the workspace): the plainest
  gevent proxy parsing both sides with that engine;
- ``bare``: a real ``dakia-master start`` with 1 worker, one route, no interceptors;
- ``chain``: the same with the default chain request_id, server_version and a rate_limiter
  (policy local) whose bucket never empties;
- ``routes1000``: 1,000 downstream hosts and 1,000 routers, each with its own filter on
  host and path prefix, the request matching only the last one;

all in front of one fast upstream (tools/bench/upstream.py), every gateway with
``http_parser`` set explicitly and the access log off. Each is driven with
``wrk -t1 -c<connections> -d<duration>s --latency`` (a slower Python load generator when wrk
is absent), in rounds that alternate over every scenario (A B C D A B C D ...), because
the machine is shared and noisy; the median of the rounds is reported.

    python tools/bench/run.py                                   # all, 3 rounds of 5 s
    python tools/bench/run.py --rounds 1 --duration 2           # a smoke run
    python tools/bench/run.py --engines httptools --scenarios floor,bare,chain
    python tools/bench/run.py --master ../old/.venv/bin/dakia-master   # the "before" table

The numbers:

- req/s, p50, p99 (ms): wrk's requests/s and latency percentiles, median of the rounds;
- failed: non-2xx responses plus socket errors, summed over the rounds; a target whose
  scenario (or reference) had any is missed, its number is not a valid measurement;
- x floor, p99 x fl: req/s and p99 divided by the floor's of the same engine, measured in
  the same run: the numbers the targets are about (absolute req/s vary from run to run);
- RSS MB: VmRSS of the gateway's worker after the load, in MiB. For the bare gateway it is
  also read before the load (idle) and while the bench holds ``--idle-connections`` (5,000)
  idle keep-alive connections, each having sent one request and read its response.

Writes every number, with the machine (cpu count, python) and the git commit of the tool
and of the measured gateway, to ``--json`` (default var/bench/result.json), and a bar chart
to ``--png`` (default var/bench/result.png; needs the ``bench`` extra, matplotlib).
Exits 0 whatever the numbers (a benchmark never fails a build); with ``--strict``, 1 when
a target is missed. Never part of the test suite's pass/fail.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_chart import write_png  # noqa: E402
from bench_config import (CHAIN, ENGINES, SCENARIOS, gateway_config,  # noqa: E402
                          scenario_request)
from bench_idle import HeldConnections  # noqa: E402
from bench_load import LoadFn, LoadResult, Request, pick_generator  # noqa: E402
from bench_procs import (Processes, free_port, log_tail, raise_nofile,  # noqa: E402
                         vm_rss_mb, wait_http, wait_port, worker_pid)
from bench_report import (gateway_identity, git_identity, machine_info,  # noqa: E402
                          memory_lines, scenario_table, targets_table, write_json)
from bench_targets import (IDLE_CONNECTIONS, Key, Memory, Outcome, Summary,  # noqa: E402
                           evaluate_all, issue8_targets, summarize, verdict)

ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FLOORS = os.path.join(os.path.dirname(ROOT), "shared", "bench")
FLOOR_SCRIPT = {"h11": "floor_proxy.py", "httptools": "floor_httptools.py"}


@dataclass
class Endpoint:
    """One measured server: a floor or a gateway, and what is known about it."""

    engine: str
    scenario: str
    port: int
    request: Request
    proc: subprocess.Popen[bytes]
    log: str
    config: str | None = None
    """The gateway's config file; None for a floor."""
    error_log: str | None = None
    worker: int | None = None
    failed: str = ""
    rounds: list[LoadResult] = field(default_factory=list)
    rss_idle_mb: float | None = None
    rss_after_load_mb: float | None = None

    @property
    def key(self) -> Key:
        return self.engine, self.scenario

    @property
    def name(self) -> str:
        return f"{self.engine} {self.scenario}"


# -- arguments ------------------------------------------------------------------------------
def default_master() -> str:
    return os.path.join(os.path.dirname(sys.executable), "dakia-master")


def csv_of(allowed: Sequence[str]) -> Any:
    """An argparse type: a comma-separated subset of ``allowed``, in the order given."""
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}")
        return items
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--engines", type=csv_of(ENGINES), default=list(ENGINES))
    parser.add_argument("--scenarios", type=csv_of(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle-connections", type=int, default=IDLE_CONNECTIONS,
                        help="idle keep-alive connections held for the RSS target (0: skip)")
    parser.add_argument("--floors", default=DEFAULT_FLOORS,
                        help="directory of floor_proxy.py and floor_httptools.py")
    parser.add_argument("--master", default=default_master(),
                        help="the dakia-master executable of the gateway to measure")
    parser.add_argument("--json", default=os.path.join(ROOT, "var", "bench", "result.json"))
    parser.add_argument("--png", default=os.path.join(ROOT, "var", "bench", "result.png"))
    parser.add_argument("--metrics", choices=("on", "off", "default"), default="default",
                        help="metrics.enabled of the gateways measured; default: the key "
                             "is left out (on, for a gateway that has metrics)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-tmp", action="store_true",
                        help="keep the temp dir (configs, logs) and print where it is")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        parser.error("--rounds, --duration and --connections must be positive")
    args.master = os.path.abspath(args.master)  # it also runs from the temp dir
    if not os.access(args.master, os.X_OK):
        parser.error(f"--master {args.master}: not an executable")
    return args


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- starting -------------------------------------------------------------------------------
def start_upstream(procs: Processes, tmp: str) -> int:
    port = free_port()
    proc = procs.start([sys.executable, os.path.join(HERE, "upstream.py"), str(port)],
                       os.path.join(tmp, "upstream.log"))
    wait_port(port, proc)
    return port


def floor_command(floors: str, engine: str, port: int, upstream_port: int) -> list[str] | None:
    script = os.path.join(floors, FLOOR_SCRIPT[engine])
    if not os.path.exists(script):
        return None
    ports = [str(port), "1", str(upstream_port)] if engine == "h11" else [str(port),
                                                                          str(upstream_port)]
    return [sys.executable, script, *ports]


def start_floor(procs: Processes, tmp: str, floors: str, engine: str,
                upstream_port: int) -> Endpoint | None:
    port = free_port()
    command = floor_command(floors, engine, port, upstream_port)
    if command is None:
        progress(f"({FLOOR_SCRIPT[engine]} not found in {floors}: no floor for {engine})")
        return None
    log = os.path.join(tmp, f"floor-{engine}.log")
    return Endpoint(engine, "floor", port, Request(), procs.start(command, log), log)


def write_config(tmp: str, config: dict[str, Any], name: str) -> str:
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path


def start_gateway(procs: Processes, tmp: str, master: str, engine: str, scenario: str,
                  upstream_port: int, metrics: bool | None = None) -> Endpoint:
    port = free_port()
    name = f"{scenario}-{engine}"
    config = gateway_config(scenario, engine, port, upstream_port, tmp, metrics=metrics)
    path = write_config(tmp, config, name)
    log = os.path.join(tmp, f"master-{name}.log")
    proc = procs.start([master, "start", "-c", path], log, cwd=tmp)
    return Endpoint(engine, scenario, port, scenario_request(scenario), proc, log, path,
                    error_log=config["error_log"])


def start_all(procs: Processes, tmp: str, args: argparse.Namespace,
              upstream_port: int) -> list[Endpoint]:
    """Every selected scenario of every engine, started at once (they boot in parallel)."""
    endpoints: list[Endpoint] = []
    for engine in args.engines:
        for scenario in args.scenarios:
            if scenario == "floor":
                floor = start_floor(procs, tmp, args.floors, engine, upstream_port)
                if floor is not None:
                    endpoints.append(floor)
            else:
                metrics = {"on": True, "off": False}.get(args.metrics)
                endpoints.append(start_gateway(procs, tmp, args.master, engine, scenario,
                                               upstream_port, metrics))
    return endpoints


def make_ready(endpoint: Endpoint, master: str) -> None:
    """Wait for a 200 through it and find its worker; on failure, say why and skip it."""
    try:
        wait_http(endpoint.port, endpoint.request, endpoint.proc)
        if endpoint.config is not None:
            endpoint.worker = worker_pid(master, endpoint.config, endpoint.proc.pid)
            endpoint.rss_idle_mb = vm_rss_mb(endpoint.worker)
    except (RuntimeError, OSError, ValueError) as exc:
        endpoint.failed = f"not ready: {exc}"
        logs = [endpoint.log] + ([endpoint.error_log] if endpoint.error_log else [])
        progress(f"{endpoint.name}: {endpoint.failed}\n" + "".join(map(log_tail, logs)))


# -- measuring ------------------------------------------------------------------------------
def measure_once(endpoint: Endpoint, load: LoadFn, args: argparse.Namespace) -> None:
    try:
        result = load(endpoint.port, endpoint.request, args.connections, args.duration)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        endpoint.failed = f"load generator failed: {exc}"
        progress(f"{endpoint.name}: {endpoint.failed}")
        return
    endpoint.rounds.append(result)
    progress(f"  {endpoint.name:<22} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
             f"p99 {result.p99_ms:6.2f} ms  failed {result.errors}")


def run_rounds(endpoints: Sequence[Endpoint], load: LoadFn, args: argparse.Namespace) -> None:
    """A B C D, A B C D, ...: every scenario once per round, so drift hits them all alike."""
    for number in range(1, args.rounds + 1):
        progress(f"round {number}/{args.rounds}")
        for endpoint in endpoints:
            if not endpoint.failed:
                measure_once(endpoint, load, args)


def read_after_load(endpoint: Endpoint, master: str) -> None:
    """The worker's RSS after the load; a worker replaced meanwhile is reported, not read."""
    if endpoint.config is None or endpoint.worker is None or endpoint.failed:
        return
    try:
        now = worker_pid(master, endpoint.config, endpoint.proc.pid, timeout=5)
    except RuntimeError as exc:
        endpoint.failed = str(exc)
        return
    if now != endpoint.worker:
        endpoint.failed = f"worker {endpoint.worker} was replaced by {now} during the run"
        progress(f"{endpoint.name}: {endpoint.failed}")
        return
    endpoint.rss_after_load_mb = vm_rss_mb(now)


def measure_holding(endpoint: Endpoint, count: int, memory: Memory) -> None:
    """RSS of the worker while ``count`` idle keep-alive connections are held open."""
    assert endpoint.worker is not None
    progress(f"{endpoint.name}: opening {count:,} idle keep-alive connections")
    with HeldConnections(endpoint.port, endpoint.request) as held:
        memory.held = held.open(count)
        memory.note = held.error
        time.sleep(1.0)
        memory.holding_mb = vm_rss_mb(endpoint.worker)
    progress(f"{endpoint.name}: {memory.held:,} held, worker RSS {memory.holding_mb:.1f} MB"
             + (f" ({held.error})" if held.error else ""))


def bare_memory(endpoint: Endpoint, count: int) -> Memory:
    memory = Memory(idle_mb=endpoint.rss_idle_mb, after_load_mb=endpoint.rss_after_load_mb,
                    wanted=count)
    if endpoint.failed or endpoint.worker is None:
        memory.note = endpoint.failed or "no worker"
    elif count <= 0:
        memory.note = "--idle-connections 0: not measured"
    else:
        measure_holding(endpoint, count, memory)
    return memory


# -- the result -----------------------------------------------------------------------------
def summaries_of(endpoints: Sequence[Endpoint]) -> dict[Key, Summary]:
    return {e.key: summarize(e.rounds) for e in endpoints if e.rounds}


def scenario_record(endpoint: Endpoint, summaries: dict[Key, Summary]) -> dict[str, Any]:
    summary = summaries.get(endpoint.key)
    return {"engine": endpoint.engine, "scenario": endpoint.scenario,
            "request": asdict(endpoint.request), "failed": endpoint.failed,
            "rounds": [r.to_dict() for r in endpoint.rounds],
            "median": asdict(summary) if summary else None,
            "worker_rss_idle_mb": endpoint.rss_idle_mb,
            "worker_rss_after_load_mb": endpoint.rss_after_load_mb}


def build_result(args: argparse.Namespace, generator: str, gateway: dict[str, Any],
                 started: float, endpoints: Sequence[Endpoint], memory: dict[str, Memory],
                 outcomes: Sequence[Outcome]) -> dict[str, Any]:
    summaries = summaries_of(endpoints)
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "settings": {"engines": args.engines, "scenarios": args.scenarios,
                     "rounds": args.rounds, "duration": args.duration,
                     "connections": args.connections,
                     "idle_connections": args.idle_connections, "load_generator": generator,
                     "floors": os.path.abspath(args.floors), "chain": list(CHAIN)},
        "machine": machine_info(),
        "bench": git_identity(ROOT),
        "gateway": gateway,
        "scenarios": [scenario_record(e, summaries) for e in endpoints],
        "memory": {engine: asdict(m) for engine, m in memory.items()},
        "targets": [o.to_dict() for o in outcomes],
        "verdict": asdict(verdict(outcomes)),
    }


def chart_title(result: dict[str, Any]) -> str:
    commit = (result["gateway"].get("git") or {}).get("commit") or "?"
    settings = result["settings"]
    return (f"dakia-prefork {commit[:10]} · {result['started_at'][:16]} · "
            f"{settings['load_generator']} -c{settings['connections']} · "
            f"median of {settings['rounds']} x {settings['duration']:g}s · "
            f"{result['machine']['cpu_count']} CPUs")


def report(args: argparse.Namespace, result: dict[str, Any], endpoints: Sequence[Endpoint],
           memory: dict[str, Memory], outcomes: Sequence[Outcome]) -> None:
    summaries = summaries_of(endpoints)
    rss = {e.key: e.rss_after_load_mb for e in endpoints if e.rss_after_load_mb is not None}
    print()
    print(scenario_table(summaries, outcomes, rss))
    print()
    print(targets_table(outcomes))
    print()
    print(memory_lines(memory))
    for endpoint in endpoints:
        if endpoint.failed:
            print(f"  {endpoint.name}: {endpoint.failed}")
    v = verdict(outcomes)
    print(f"\n{v.met} targets met, {v.missed} missed, {v.unmeasured} not measured")
    write_json(args.json, result)
    print(f"result written to {args.json}")
    print(write_png(args.png, args.engines, summaries, outcomes, chart_title(result)))


def header(args: argparse.Namespace, generator: str, gateway: dict[str, Any]) -> str:
    commit = (gateway.get("git") or {}).get("commit") or "unknown commit"
    return (f"load: {generator}, {args.connections} connections, {args.rounds} x "
            f"{args.duration:g}s, alternating, medians\n"
            f"gateway: {args.master} ({gateway['version'] or 'version ?'}, {commit}), "
            f"1 worker, access log off\nfloors: {os.path.abspath(args.floors)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    generator, load = pick_generator()
    gateway = gateway_identity(args.master)
    print(header(args, generator, gateway), flush=True)
    raise_nofile(args.idle_connections + 4096)
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="dakia-bench-")
    memory: dict[str, Memory] = {}
    try:
        with Processes() as procs:
            upstream_port = start_upstream(procs, tmp)
            endpoints = start_all(procs, tmp, args, upstream_port)
            for endpoint in endpoints:
                make_ready(endpoint, args.master)
            run_rounds(endpoints, load, args)
            for endpoint in endpoints:
                read_after_load(endpoint, args.master)
            for endpoint in endpoints:
                if endpoint.scenario == "bare":
                    memory[endpoint.engine] = bare_memory(endpoint, args.idle_connections)
    finally:
        if args.keep_tmp:
            progress(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    outcomes = evaluate_all(issue8_targets(args.engines, args.idle_connections),
                            summaries_of(endpoints), memory)
    result = build_result(args, generator, gateway, started, endpoints, memory, outcomes)
    report(args, result, endpoints, memory, outcomes)
    return 1 if args.strict and verdict(outcomes).missed else 0


if __name__ == "__main__":
    sys.exit(main())
