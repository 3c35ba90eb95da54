"""Connections to one external plugin's unix socket, kept per worker and reused.

A call takes an idle connection (or opens one), writes the framed request, reads the framed
answer, and puts the connection back. One connection carries one call at a time, so
concurrent requests use concurrent connections and a plugin can answer them in parallel;
at most ``max_idle`` are kept between calls.

Everything a call does (connect, write, read) shares one deadline: the plugin's timeout.
A connection that timed out or broke is closed, never reused: a late answer on it would
otherwise be read as the answer to the next call.

Plugins restart. A pooled connection to a plugin that has since exited is found closed
when it is used (EOF or a reset before any byte of the answer); the call is then made once
more on a fresh connection, within the same deadline. A plugin may therefore see a call
twice, and its verdicts should not depend on being called once.

The pool lives in the worker's ``Resources`` (one per worker and socket path, surviving
reloads); under gevent the socket operations yield to other connections.
"""
from __future__ import annotations

import socket
import time
from collections import deque

from .protocol import HEADER, decode, message_length

_STALE_ERRNOS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Stale(Exception):
    """A reused connection turned out closed before any answer arrived."""


class PluginPool:
    def __init__(self, path: str, max_idle: int) -> None:
        self.path = path
        self.max_idle = max_idle
        self._idle: deque[socket.socket] = deque()

    def call(self, message: bytes, timeout: float, limit: int) -> dict:
        """Send the framed ``message``, return the decoded answer. Raises OSError (with
        TimeoutError for the deadline), EOFError or protocol.ProtocolError."""
        deadline = time.monotonic() + timeout
        while True:
            sock, reused = self._take(deadline)
            try:
                answer = self._exchange(sock, message, deadline, limit, reused)
            except _Stale:
                sock.close()
                continue                 # a fresh connection next: _idle drains first
            except BaseException:
                sock.close()
                raise
            if len(self._idle) < self.max_idle:
                self._idle.append(sock)
            else:
                sock.close()
            return answer

    def _take(self, deadline: float) -> tuple[socket.socket, bool]:
        if self._idle:
            return self._idle.pop(), True
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        return sock, False

    @staticmethod
    def _exchange(sock: socket.socket, message: bytes, deadline: float, limit: int,
                  reused: bool) -> dict:
        try:
            sock.settimeout(_remaining(deadline))
            sock.sendall(message)
            header = _read(sock, HEADER.size, deadline)
        except _STALE_ERRNOS:
            if reused:
                raise _Stale() from None
            raise
        if len(header) < HEADER.size:
            if reused and not header:
                raise _Stale()
            raise EOFError("the plugin closed the connection before answering")
        length = message_length(header, limit)
        body = _read(sock, length, deadline)
        if len(body) < length:
            raise EOFError("the plugin closed the connection mid-answer")
        return decode(body)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the plugin did not answer in time")
    return remaining


def _read(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Up to ``size`` bytes; fewer only at EOF."""
    chunks = []
    missing = size
    while missing:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(min(missing, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)

