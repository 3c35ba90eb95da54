"""Processes of a benchmark run: started in their own process group, always stopped.

Also what the run asks of them: a free port, readiness (a 200 through the whole chain),
the worker of a master and its VmRSS, and the open-files limit they inherit.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType

from bench_load import Request, response_end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit).

    Children started afterwards inherit it: the gateways must accept the idle connections
    the bench holds. Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Processes:
    """Started processes, each the leader of its own group; ``stop_all`` ends every group."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, command: Sequence[str], log: str,
              cwd: str | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        while self.started:
            stop_group(self.started.pop())

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop_all()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """TERM the leader (a master stops its workers), then KILL whatever is left of its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 30.0) -> None:
    """Until something accepts on ``port``; fails early when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(proc)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout:g}s")


def probe(port: int, request: Request, timeout: float = 2.0) -> int | None:
    """The status of one ``request`` on a fresh connection, None when there is no answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request.wire(port))
            buffer = b""
            while (answer := response_end(buffer)) is None:
                data = s.recv(65536)
                if not data:
                    return None
                buffer += data
            return answer[0]
    except (OSError, ValueError, IndexError):
        return None


def wait_http(port: int, request: Request, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 60.0) -> None:
    """Until ``request`` through ``port`` gets a 200: the whole chain is up and routes it."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        _check_alive(proc)
        status = probe(port, request)
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no 200 through {port} after {timeout:g}s (last status: {status})")


def _check_alive(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"process {proc.pid} exited with status {proc.returncode}")


# -- workers and their memory ---------------------------------------------------------------
def status_workers(master: str, config: str) -> list[int]:
    """Pids of ready workers as ``dakia-master status --json`` reports them."""
    try:
        done = subprocess.run([master, "status", "--json", "-c", config], capture_output=True,
                              text=True, timeout=20)
        report = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [int(w["pid"]) for w in report.get("workers", [])
            if w.get("state") == "ready" and w.get("pid")]


def parent_of(pid: int) -> int | None:
    """The ppid in /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def children_of(pid: int) -> list[int]:
    return sorted(int(entry) for entry in os.listdir("/proc")
                  if entry.isdigit() and parent_of(int(entry)) == pid)


def worker_pid(master: str, config: str, master_pid: int, timeout: float = 30.0) -> int:
    """The one worker of a 1-worker master: from ``status --json``, else its only child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = status_workers(master, config) or children_of(master_pid)
        if len(workers) == 1:
            return workers[0]
        time.sleep(0.2)
    raise RuntimeError(f"no single worker of master {master_pid} after {timeout:g}s")


def parse_vm_rss_mb(status: str) -> float:
    """VmRSS of a /proc/<pid>/status text, in MB (2**20 bytes)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) / 1024
    raise ValueError("no VmRSS line")


def vm_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return parse_vm_rss_mb(f.read())
