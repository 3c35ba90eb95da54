"""A real ``redis-server`` for tests: on a free port, nothing persisted, always stopped.

``.ci/run`` installs redis-server when it is missing; a test that needs one fails (it does
not skip) when the binary is absent, so a CI without it cannot pass silently.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

from .harness import free_port, wait_until


class RedisServer:
    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (.ci/run installs it: "
                                 "apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(directory, f"redis-{self.port}.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--logfile", self.log_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def command(self, *args: str) -> bytes:
        """One command in RESP; the raw reply (enough for PING, FLUSHALL, KEYS, DEBUG)."""
        payload = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(payload)
            time.sleep(0.01)
            return s.recv(65536)

    def ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        try:
            return self.command("PING") == b"+PONG\r\n"
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes as it would in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
