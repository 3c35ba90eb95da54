"""Benchmark: HTTPS against plain HTTP through one gateway worker, measured in one run.

Starts the bench upstream (upstream.py) and a real ``dakia-master start`` with 1 worker
and two listeners on random free ports, one plain and one TLS (a self-signed P-256
certificate made with ``dakia-master cert``'s code), both routing ``GET /`` to the upstream.
Then drives each listener with wrk, in rounds that alternate over the four loads because
the machine is shared and noisy, and prints the median of the rounds:

- ``keep-alive``: ``--connections`` keep-alive clients: requests/s once connections are up,
  the cost TLS adds to each request (record encryption, the TLS socket's reads/writes);
- ``new conn``: the same clients sending ``Connection: close``, so every request is a new
  TCP connection, and on the TLS listener a new handshake with one request. wrk resumes
  its TLS sessions (the gateway's contexts keep OpenSSL's session cache and tickets on),
  so these are resumed handshakes: no certificate, no signature;
- ``https full handshakes``: ``--handshakers`` parallel ``openssl s_time -new`` clients,
  each making full handshakes (no resumption) and closing: the full handshakes/s one
  worker sustains, without a request.

    python tools/bench/tls.py                            # 3 rounds of 5 s, httptools
    python tools/bench/tls.py --rounds 1 --duration 2    # a smoke run

Needs wrk (with https support, as Debian builds it) and the openssl command. Exits 0
whatever the numbers; never part of the test suite's pass/fail.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_load import Request, parse_wrk  # noqa: E402
from bench_procs import Processes, free_port, log_tail, wait_http, wait_port  # noqa: E402

from dakia_prefork.tls.certs import write_self_signed  # noqa: E402

LOADS = ("plain keep-alive", "https keep-alive", "plain new conn", "https new conn",
         "https full handshakes")
_S_TIME = re.compile(r"(\d+) connections in [\d.]+ real seconds")


def gateway_config(tmp: str, engine: str, plain: int, tls: int, upstream: int,
                   cert: str, key: str) -> dict[str, Any]:
    return {
        "workers": 1, "http_parser": engine, "access_log": "off",
        "pid_file": os.path.join(tmp, "dakia.pid"), "state_dir": os.path.join(tmp, "state"),
        "error_log": os.path.join(tmp, "error.log"),
        "gateways": [{
            "name": "bench",
            "bind_addresses": [{"host": "127.0.0.1", "port": plain},
                               {"host": "127.0.0.1", "port": tls,
                                "tls": {"certificates": [{"cert": cert, "key": key}]}}],
            "upstreams": [{"name": "up", "default": True, "upstream_nodes": [
                {"address": {"host": "127.0.0.1", "port": upstream}}]}],
        }],
    }


def wrk(url: str, connections: int, duration: float, close: bool) -> tuple[float, int]:
    """(requests/s, errors) of one wrk run."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if close:
        command += ["-H", "Connection: close"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                          timeout=duration + 60)
    result = parse_wrk(done.stdout)
    return result.rps, result.errors


def full_handshakes(port: int, clients: int, duration: float) -> tuple[float, int]:
    """(full handshakes/s, clients that failed) of ``clients`` parallel ``openssl s_time
    -new`` runs, counted over the wall time of the whole batch."""
    command = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new",
               "-time", f"{max(1, round(duration))}"]
    started = time.monotonic()
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, text=True) for _ in range(clients)]
    total = failed = 0
    for run in runs:
        out, _ = run.communicate(timeout=duration + 60)
        match = _S_TIME.search(out)
        if run.returncode != 0 or match is None:
            failed += 1
        else:
            total += int(match.group(1))
    return total / (time.monotonic() - started), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="httptools", choices=("h11", "httptools"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--handshakers", type=int, default=4,
                        help="parallel openssl s_time clients (default: %(default)s)")
    parser.add_argument("--master", default=os.path.join(ROOT, ".venv", "bin", "dakia-master"))
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("openssl") is None:
        print("tls.py needs wrk and openssl (apt-get install wrk openssl)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="dakia-bench-tls-") as tmp, Processes() as procs:
        cert, key = write_self_signed(os.path.join(tmp, "tls"), ["localhost"], 1)
        upstream_port, plain, tls = free_port(), free_port(), free_port()
        upstream = procs.start([sys.executable, os.path.join(HERE, "upstream.py"),
                                str(upstream_port)], os.path.join(tmp, "upstream.log"))
        wait_port(upstream_port, upstream)
        config_path = os.path.join(tmp, "dakia.yaml")
        with open(config_path, "w") as f:
            yaml.safe_dump(gateway_config(tmp, args.engine, plain, tls, upstream_port, cert,
                                          key), f)
        master = procs.start([args.master, "start", "-c", config_path],
                             os.path.join(tmp, "master.log"), cwd=ROOT)
        try:
            wait_http(plain, Request(), master)
        except RuntimeError:
            print(log_tail(os.path.join(tmp, "master.log")), file=sys.stderr)
            raise
        urls = {"plain": f"http://127.0.0.1:{plain}/", "https": f"https://localhost:{tls}/"}
        results: dict[str, list[float]] = {load: [] for load in LOADS}
        errors = dict.fromkeys(LOADS, 0)
        for round_index in range(args.rounds):
            for load in LOADS:
                scheme, _, kind = load.partition(" ")
                if kind == "full handshakes":
                    rps, failed = full_handshakes(tls, args.handshakers, args.duration)
                else:
                    rps, failed = wrk(urls[scheme], args.connections, args.duration,
                                      close=kind == "new conn")
                results[load].append(rps)
                errors[load] += failed
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    print(f"engine {args.engine}, 1 worker, wrk -t1 -c{args.connections}, "
          f"{args.rounds} x {args.duration:g} s, median")
    print(f"{'load':<22} {'per second':>10} {'errors':>7}")
    for load in LOADS:
        print(f"{load:<22} {statistics.median(results[load]):>10.0f} {errors[load]:>7}")
    keep = statistics.median(results["https keep-alive"]) / statistics.median(
        results["plain keep-alive"])
    new = statistics.median(results["https new conn"]) / statistics.median(
        results["plain new conn"])
    print(f"https / plain: keep-alive {keep:.2f}, new connections {new:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
