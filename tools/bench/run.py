"""Benchmark: the gateway (1 worker) against the reference floor of the same parser engine.

Starts a fast upstream, then for each engine the reference floor proxy and a real
``dakia-master`` with one worker, and drives each with wrk (or, when wrk is absent, a small
Python load generator) at the same connection count. Runs alternate (floor, gateway, floor,
gateway, ...) and the median of the rounds is reported, because this machine is shared and
noisy. Prints requests/s, p50 and p99 latency and the gateway/floor ratio per engine.

    python tools/bench/run.py                     # both engines, 3 rounds of 5 s, 50 connections
    python tools/bench/run.py --engines httptools --duration 10 --rounds 5

The floors are ../shared/bench/floor_proxy.py (h11) and floor_httptools.py (httptools) from
the workspace; ``--floors DIR`` points elsewhere. Never part of the test suite's pass/fail.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FLOORS = os.path.join(os.path.dirname(ROOT), "shared", "bench")
FLOOR_SCRIPT = {"h11": "floor_proxy.py", "httptools": "floor_httptools.py"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def wait_http(port: int, timeout: float = 20.0) -> None:
    """Wait until a GET through ``port`` gets a 200 (the whole chain is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no 200 through {port} after {timeout}s")


def start(cmd: list[str], log: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- load generation ------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _wrk_field(pattern: str, out: str) -> str:
    match = re.search(pattern, out)
    if match is None:
        raise ValueError(f"wrk printed no {pattern!r}:\n{out}")
    return match.group(1)


def run_wrk(port: int, connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    rps = float(_wrk_field(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_wrk_field(r"\s50%\s+(\S+)", out))
    p99 = _ms(_wrk_field(r"\s99%\s+(\S+)", out))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99,
            "errors": float(errors.group(1)) if errors else 0.0,
            "socket_errors": 1.0 if socket_errors else 0.0}


def run_python_load(port: int, connections: int, duration: float) -> dict[str, float]:
    """A fallback load generator: ``connections`` keep-alive clients in a gevent process."""
    code = r"""
import sys, time, json
from gevent import monkey; monkey.patch_all()
import gevent, socket
port, conns, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
req = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"
lat = []; errors = [0]
end = time.monotonic() + duration
def client():
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    while time.monotonic() < end:
        t = time.monotonic(); s.sendall(req)
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head = buf[:i].lower(); n = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(buf) >= i + 4 + n:
                    if not head.startswith(b"http/1.1 200"): errors[0] += 1
                    buf = buf[i + 4 + n:]; break
            d = s.recv(65536)
            if not d: return
            buf += d
        lat.append(time.monotonic() - t)
gevent.joinall([gevent.spawn(client) for _ in range(conns)])
lat.sort()
print(json.dumps({"rps": len(lat) / duration, "p50": lat[len(lat) // 2] * 1e3,
                  "p99": lat[int(len(lat) * 0.99)] * 1e3, "errors": errors[0], "socket_errors": 0}))
"""
    import json
    out = subprocess.run([sys.executable, "-c", code, str(port), str(connections),
                          str(duration)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# -- the run --------------------------------------------------------------------------------
def gateway_config(tmp: str, port: int, upstream_port: int, engine: str,
                   access_log: bool) -> str:
    config = {
        "workers": 1,
        "http_parser": engine,
        "pid_file": os.path.join(tmp, f"{engine}.pid"),
        "state_dir": os.path.join(tmp, f"state-{engine}"),
        "access_log": os.path.join(tmp, f"access-{engine}.log") if access_log else "off",
        "error_log": os.path.join(tmp, f"error-{engine}.log"),
        "gateways": [{
            "name": "bench",
            "bind_addresses": [{"host": "127.0.0.1", "port": port}],
            "downstreams": [{"host": "localhost"}, {"host": "127.0.0.1"}],
            "upstreams": [{"name": "up", "default": True, "upstream_nodes": [
                {"address": {"host": "127.0.0.1", "port": upstream_port}}]}],
            "routers": [{"upstream": "up"}],
        }],
    }
    path = os.path.join(tmp, f"{engine}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="h11,httptools")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floors", default=DEFAULT_FLOORS,
                        help="directory of floor_proxy.py / floor_httptools.py")
    parser.add_argument("--access-log", action="store_true",
                        help="write the gateway's access log to a file (default: off)")
    args = parser.parse_args()

    load = run_wrk if shutil.which("wrk") else run_python_load
    print(f"load generator: {'wrk -t1' if load is run_wrk else 'python (wrk not found)'}, "
          f"{args.connections} connections, {args.duration:g}s x {args.rounds} rounds, "
          f"median reported; gateway: 1 worker, access log "
          f"{'on (file)' if args.access_log else 'off'}")
    tmp = tempfile.mkdtemp(prefix="dakia-bench-")
    procs: list[subprocess.Popen] = []
    upstream_port = free_port()
    try:
        procs.append(start([sys.executable, os.path.join(HERE, "upstream.py"),
                            str(upstream_port)], os.path.join(tmp, "upstream.log")))
        wait_port(upstream_port)
        rows = []
        for engine in args.engines.split(","):
            targets: dict[str, int] = {}
            floor = os.path.join(args.floors, FLOOR_SCRIPT[engine])
            if os.path.exists(floor):
                port = free_port()
                floor_args = ([str(port), "1", str(upstream_port)] if engine == "h11"
                              else [str(port), str(upstream_port)])
                procs.append(start([sys.executable, floor, *floor_args],
                                   os.path.join(tmp, f"floor-{engine}.log")))
                targets["floor"] = port
            else:
                print(f"({floor} not found: no floor for {engine})")
            port = free_port()
            config = gateway_config(tmp, port, upstream_port, engine, args.access_log)
            procs.append(start([sys.executable, "-m", "dakia_prefork.cli", "start", "-c",
                                config], os.path.join(tmp, f"gateway-{engine}.log")))
            targets["gateway"] = port
            for port in targets.values():
                wait_http(port)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, port in targets.items():
                    results[name].append(load(port, args.connections, args.duration))
            for name, runs in results.items():
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append((engine, name, med))
        print(f"\n{'engine':<10} {'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'non-2xx':>8} {'vs floor':>9}")
        floors = {e: m["rps"] for e, n, m in rows if n == "floor"}
        for engine, name, med in rows:
            ratio = (f"{med['rps'] / floors[engine]:.2f}"
                     if name == "gateway" and engine in floors else "")
            print(f"{engine:<10} {name:<8} {med['rps']:>9.0f} {med['p50']:>8.2f} "
                  f"{med['p99']:>8.2f} {med['errors']:>8.0f} {ratio:>9}")
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
