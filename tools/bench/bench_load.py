"""Load generation for tools/bench: wrk and its parsed output, or the Python fallback.

Both generators drive one listening port with ``connections`` keep-alive clients for
``duration`` seconds, sending the same request (a path and, optionally, a Host header), and
return a :class:`LoadResult`. wrk is the reference (``-t1 --latency``); ``pyload.py`` is
only there so that the tool still runs where wrk is not installed, and is much slower.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m|h)$")
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Request:
    """What every client sends: ``GET path`` with this Host (None: the address itself)."""

    path: str = "/"
    host: str | None = None

    def wire(self, port: int) -> bytes:
        host = self.host or f"127.0.0.1:{port}"
        return f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii")


@dataclass(frozen=True)
class LoadResult:
    """One measurement: throughput, latency percentiles (ms) and what went wrong."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


LoadFn = Callable[[int, Request, int, float], LoadResult]
"""(port, request, connections, duration in seconds) -> result."""


# -- wrk ------------------------------------------------------------------------------------
def duration_ms(text: str) -> float:
    """wrk's latency text (``812.00us``, ``3.41ms``, ``1.02s``, ``1.50m``) in milliseconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output)
    if match is None:
        raise ValueError(f"wrk output has no {pattern!r}:\n{output}")
    return match


def parse_wrk(output: str) -> LoadResult:
    """The numbers of ``wrk --latency`` output; socket errors are summed over their kinds."""
    rps = float(_search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = duration_ms(_search(r"\s50%\s+(\S+)", output).group(1))
    p99 = duration_ms(_search(r"\s99%\s+(\S+)", output).group(1))
    requests = int(_search(r"(\d+) requests in ", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:(.*)", output)
    return LoadResult(
        rps=rps, p50_ms=p50, p99_ms=p99, requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=(sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
                       if socket_errors else 0))


def wrk_command(port: int, request: Request, connections: int, duration: float,
                wrk: str = "wrk") -> list[str]:
    """``wrk -t1 -c<connections> -d<duration>s --latency [-H Host] http://127.0.0.1:port/path``."""
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if request.host:
        command += ["-H", f"Host: {request.host}"]
    return command + [f"http://127.0.0.1:{port}{request.path}"]


def run_wrk(port: int, request: Request, connections: int, duration: float) -> LoadResult:
    done = subprocess.run(wrk_command(port, request, connections, duration),
                          capture_output=True, text=True, check=True, timeout=duration + 60)
    return parse_wrk(done.stdout)


# -- the Python fallback --------------------------------------------------------------------
def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted ``ordered`` lies (nearest rank)."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, int(len(ordered) * fraction)))
    return ordered[index]


def response_end(buffer: bytes) -> tuple[int, int] | None:
    """(status, length) of the first whole response in ``buffer``, or None if incomplete.

    Only what the bench upstream and the gateway send to a GET: a head with Content-Length.
    """
    head_end = buffer.find(_HEAD_END)
    if head_end < 0:
        return None
    head = buffer[:head_end].lower()
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            length = int(value)
    total = head_end + len(_HEAD_END) + length
    return (status, total) if len(buffer) >= total else None


def run_python_load(port: int, request: Request, connections: int,
                    duration: float) -> LoadResult:
    """Runs ``pyload.py`` (gevent clients) in its own process and reads its JSON line."""
    command = [sys.executable, os.path.join(HERE, "pyload.py"), str(port), str(connections),
               f"{duration:g}", request.path, request.host or ""]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          timeout=duration + 60)
    return LoadResult(**json.loads(done.stdout))


def pick_generator() -> tuple[str, LoadFn]:
    """wrk when it is on PATH, else the Python fallback; with a name for the report."""
    if shutil.which("wrk"):
        return "wrk -t1", run_wrk
    return "python (wrk not found)", run_python_load
