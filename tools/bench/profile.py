"""Where a gateway's worker spends its time under load: py-spy on the worker while wrk runs.

Starts the fast upstream and one scenario of tools/bench (bare, chain, routes1000) on one
engine, drives it with wrk for ``--duration`` seconds, samples the worker with
``py-spy record --format raw`` meanwhile, and prints the functions with the most samples,
by self time and by inclusive time (a function counted once per stack however deep it
recurs). The raw stacks are kept in ``--out`` for a flame graph.

    python tools/bench/profile.py --scenario chain --engine httptools
    python tools/bench/profile.py --scenario bare --master tools/bench/compiled-master

py-spy needs ptrace rights over the worker (root, or kernel.yama.ptrace_scope=0); it is
in the ``bench`` extra. Compiled (mypyc) modules appear to py-spy only with ``--native``,
so profile the pure build to see the Python functions.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_config import GATEWAY_SCENARIOS, gateway_config, scenario_request  # noqa: E402
from bench_procs import Processes, free_port, wait_http, wait_port, worker_pid  # noqa: E402
from run import default_master, write_config  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=GATEWAY_SCENARIOS, default="chain")
    parser.add_argument("--engine", choices=("h11", "httptools"), default="httptools")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--master", default=default_master())
    parser.add_argument("--out", default=os.path.join("var", "bench", "profile.txt"))
    return parser.parse_args(argv)


def frame_name(frame: str) -> str:
    """``function (file:line)`` of py-spy's raw format, without the line: one per function."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({path.rsplit('/', 2)[-1] if path else '?'})"


def summarise(raw: str) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """(self samples, inclusive samples, total) per function of py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive, total


def print_top(title: str, counts: collections.Counter[str], total: int, top: int) -> None:
    print(f"\n{title} (of {total} samples)")
    for name, count in counts.most_common(top):
        print(f"  {100.0 * count / total:5.1f}%  {name}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None and not os.path.exists(
                os.path.join(os.path.dirname(sys.executable), tool)):
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    tmp = tempfile.mkdtemp(prefix="dakia-profile-")
    try:
        with Processes() as procs:
            upstream_port = free_port()
            up = procs.start([sys.executable, os.path.join(HERE, "upstream.py"),
                              str(upstream_port)], os.path.join(tmp, "upstream.log"))
            wait_port(upstream_port, up)
            port = free_port()
            config = gateway_config(args.scenario, args.engine, port, upstream_port, tmp)
            path = write_config(tmp, config, "gateway")
            master = procs.start([args.master, "start", "-c", path],
                                 os.path.join(tmp, "master.log"), cwd=tmp)
            request = scenario_request(args.scenario)
            wait_http(port, request, master)
            worker = worker_pid(args.master, path, master.pid)
            raw_path = os.path.join(tmp, "stacks.txt")
            record = [spy, "record", "--pid", str(worker), "--format", "raw", "--output",
                      raw_path, "--duration", str(args.duration), "--rate", str(args.rate),
                      "--nonblocking"] + (["--native"] if args.native else [])
            host = request.host or f"127.0.0.1:{port}"
            with subprocess.Popen(record, stdout=subprocess.DEVNULL) as spying:
                load = subprocess.run(
                    ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration + 1}s",
                     "-H", f"Host: {host}", f"http://127.0.0.1:{port}{request.path}"],
                    capture_output=True, text=True, check=True)
                spying.wait(args.duration + 30)
            print(load.stdout)
            with open(raw_path) as f:
                raw = f.read()
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(raw)
        own, inclusive, total = summarise(raw)
        if not total:
            print("py-spy collected no samples", file=sys.stderr)
            return 1
        print_top("self", own, total, args.top)
        print_top("inclusive", inclusive, total, args.top)
        print(f"\nraw stacks: {args.out}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
