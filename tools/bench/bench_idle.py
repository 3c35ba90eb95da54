"""Idle keep-alive connections held open against a gateway, to measure what they cost.

Each connection sends one request and reads its whole response, so the worker has accepted
it, served it and now keeps it waiting for the next request, as a real idle keep-alive
client does. They are opened in batches (connect and send a batch, then read its answers)
so 5,000 take about a second, not 5,000 round trips in a row.
"""
from __future__ import annotations

import selectors
import socket
import time
from types import TracebackType

from bench_load import Request, response_end


class HeldConnections:
    """Context manager: ``open`` as many as it can, all closed on exit."""

    def __init__(self, port: int, request: Request, batch: int = 250,
                 timeout: float = 30.0) -> None:
        self.port = port
        self.wire = request.wire(port)
        self.batch = batch
        self.timeout = timeout
        self.sockets: list[socket.socket] = []
        self.error = ""

    @property
    def held(self) -> int:
        return len(self.sockets)

    def open(self, count: int) -> int:
        """Open up to ``count``; stops at the first failure (kept in ``error``)."""
        try:
            while self.held < count:
                self._open_batch(min(self.batch, count - self.held))
        except (OSError, RuntimeError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        return self.held

    def _open_batch(self, size: int) -> None:
        fresh: list[socket.socket] = []
        try:
            for _ in range(size):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                fresh.append(sock)
                sock.sendall(self.wire)
            self._read_answers(fresh)
        except BaseException:
            for sock in fresh:
                sock.close()
            raise
        self.sockets += fresh

    def _read_answers(self, fresh: list[socket.socket]) -> None:
        """Read one whole 2xx response on each of ``fresh``, whichever answers first."""
        buffers = {sock: b"" for sock in fresh}
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as selector:
            for sock in fresh:
                selector.register(sock, selectors.EVENT_READ, sock)
            while buffers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(buffers)} responses not read in {self.timeout:g}s")
                for key, _ in selector.select(timeout=1.0):
                    ready: socket.socket = key.data
                    if self._read_one(ready, buffers):
                        selector.unregister(ready)

    @staticmethod
    def _read_one(sock: socket.socket, buffers: dict[socket.socket, bytes]) -> bool:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("a connection was closed before its response")
        buffers[sock] += data
        answer = response_end(buffers[sock])
        if answer is None:
            return False
        if not 200 <= answer[0] < 300:
            raise RuntimeError(f"status {answer[0]} on an idle connection's request")
        del buffers[sock]
        return True

    def close(self) -> None:
        while self.sockets:
            self.sockets.pop().close()

    def __enter__(self) -> HeldConnections:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
