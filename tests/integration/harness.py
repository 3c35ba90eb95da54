"""Real processes for integration tests: the gateway (``dakia-master``) and upstream servers.

Nothing here is a mock. ``Gateway`` writes a config file, starts the real master as a
subprocess, waits until every worker reports ready in the control block (a readiness poll,
not a sleep), and stops it in the fixture finalizer. ``Upstream`` is a small threaded HTTP/1.1
server parsing with h11 and answering through a handler the test supplies; it records what it
received so tests can assert on what the gateway sent upstream.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import h11
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 20.0


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, chosen below the kernel's ephemeral range: a port the
    kernel hands out (bind to 0) may become some client's source port before the test
    binds it, which failed runs with "address already in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    high = _ephemeral_low()
    low = max(1024, high - 20000)
    for _ in range(200):
        port = _PORTS.randrange(low, high)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found in {low}-{high - 1}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- upstream servers ---------------------------------------------------------------------
@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body_sha256: str
    body_length: int
    body: bytes                     # kept only up to 1 MiB
    connection_id: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


Handler = Callable[[Received, socket.socket], "bytes | None"]


def ok_handler(text: str = "ok") -> Handler:
    def handle(request: Received, sock: socket.socket) -> bytes:
        body = text.encode()
        return (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body))
    return handle


class Upstream:
    """A threaded HTTP/1.1 server on a free port. ``handler`` returns the raw response bytes
    (or None after writing them itself; returning None and closing ends the connection)."""

    def __init__(self, handler: Handler | None = None, name: str = "up",
                 host: str = "127.0.0.1", unix_path: str | None = None) -> None:
        self.handler = handler or ok_handler(name)
        self.name = name
        self.received: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.port = 0
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, 0))
            self.port = self.sock.getsockname()[1]
        self.host = host
        self.sock.listen(256)
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cid = self.connections
                self._open.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, cid), daemon=True)
            t.start()

    def _serve(self, conn: socket.socket, cid: int) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        conn.settimeout(30)
        try:
            while True:
                request = None
                digest = hashlib.sha256()
                length = 0
                kept = bytearray()
                while True:
                    event = h.next_event()
                    if event is h11.NEED_DATA:
                        data = conn.recv(65536)
                        h.receive_data(data)
                        if not data and h.their_state is not h11.SEND_BODY:
                            if request is None:
                                return
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        digest.update(event.data)
                        length += len(event.data)
                        if len(kept) < (1 << 20):
                            kept += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:                       # ConnectionClosed, PAUSED
                        return
                assert request is not None
                received = Received(
                    request.method.decode(), request.target.decode(),
                    [(k.decode(), v.decode("latin-1")) for k, v in request.headers],
                    digest.hexdigest(), length, bytes(kept), cid)
                with self._lock:
                    self.received.append(received)
                response = self.handler(received, conn)
                if response is None:
                    return
                conn.sendall(response)
                if (h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE
                        or b"connection: close" in response.lower().split(b"\r\n\r\n")[0]):
                    return
                # We answered with raw bytes, so tell h11 nothing and start a fresh cycle.
                trailing = h.trailing_data[0]
                h = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
                if trailing:
                    h.receive_data(trailing)
        except (OSError, h11.RemoteProtocolError):
            return
        finally:
            with self._lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# -- the gateway --------------------------------------------------------------------------
def gateway_config(tmp: str, port: int, upstreams: list[dict[str, Any]], *,
                   engine: str = "h11", workers: int = 1, extra: dict[str, Any] | None = None,
                   gateway: dict[str, Any] | None = None) -> dict[str, Any]:
    if not any(u.get("default") for u in upstreams):
        upstreams[0]["default"] = True      # no routers given: everything goes to the first
    gw: dict[str, Any] = {
        "name": "test",
        "bind_addresses": [{"host": "127.0.0.1", "port": port}],
        "upstreams": upstreams,
    }
    gw.update(gateway or {})
    config: dict[str, Any] = {
        "workers": workers,
        "http_parser": engine,
        "pid_file": os.path.join(tmp, "dakia.pid"),
        "state_dir": os.path.join(tmp, "state"),
        "access_log": os.path.join(tmp, "access.log"),
        "error_log": "stderr",
        "graceful_timeout": 10,
        "gateways": [gw],
    }
    config.update(extra or {})
    return config


def node(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"address": {"host": host, "port": port}}


@dataclass
class Gateway:
    """A running ``dakia-master start`` on a config written to ``tmp``."""

    tmp: str
    config: dict[str, Any]
    process: subprocess.Popen | None = None
    config_path: str = ""
    log_path: str = ""
    extra_args: list[str] = field(default_factory=list)
    # Run the master under another program (e.g. setpriv to drop a capability).
    command_prefix: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.config["gateways"][0]["bind_addresses"][0]["port"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> str:
        self.config_path = os.path.join(self.tmp, "dakia.yaml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config, f)
        return self.config_path

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dakia_prefork.cli", *args,
                               "-c", self.config_path], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def start(self) -> "Gateway":
        self.write_config()
        self.log_path = os.path.join(self.tmp, "master.log")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.command_prefix, sys.executable, "-m", "dakia_prefork.cli", "start",
             "-c", self.config_path,
             *self.extra_args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True)
        log.close()
        wait_until(self._ready, START_TIMEOUT, f"the gateway to be ready (log: {self.log_text()})")
        return self

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def status(self) -> dict[str, Any]:
        from dakia_prefork.cli import status_report
        from dakia_prefork.master import pidfile
        pid = pidfile.read(self.config["pid_file"])
        if pid is None:
            return {}
        return status_report(self.normalised_paths(), pid)

    def normalised_paths(self) -> dict[str, Any]:
        return {"state_dir": self.config["state_dir"], "pid_file": self.config["pid_file"]}

    def workers(self) -> list[dict[str, Any]]:
        return self.status().get("workers", [])

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gateway exited with {self.process.returncode}:\n"
                                 f"{self.log_text()}")
        workers = self.workers()
        expected = self.config.get("workers", 1)
        return len([w for w in workers if w["state"] == "ready"]) == expected

    @property
    def master_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0,
                 until_close: bool = True, host: str = "127.0.0.1",
                 half_close: bool = False) -> bytes:
    """Send raw bytes and return everything received until the server closes (or timeout).

    ``half_close`` shuts our sending side after the bytes, so the server sees EOF there.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass          # the server may answer and close before it has read it all
        if not until_close:
            return s.recv(65536)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def read_responses(sock: socket.socket, count: int, methods: list[bytes] | None = None,
                   timeout: float = 10.0) -> list[tuple[h11.Response, bytes]]:
    """Read ``count`` responses from ``sock`` with h11 (strict: framing errors fail)."""
    sock.settimeout(timeout)
    out = []
    h = h11.Connection(h11.CLIENT)
    methods = methods or [b"GET"] * count
    for method in methods:
        h.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        h.send(h11.EndOfMessage())
        response = None
        body = bytearray()
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                h.receive_data(sock.recv(65536))
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("connection closed before the response ended")
        assert response is not None
        out.append((response, bytes(body)))
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            break
        h.start_next_cycle()
    return out
