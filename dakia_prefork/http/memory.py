"""An in-memory ``Stream``: scripted reads, recorded writes, for fast tests of the request
path (the connection loop, the exchange, the upstream client) without sockets.

Reads come from a list given up front: each ``recv`` returns the next item (``bytes``,
split to the size asked for), raises it (an exception instance, e.g. ``TimeoutError()``),
or calls it (a callable returning either). When the script is exhausted ``recv`` returns
``b""`` (EOF), or with ``endless=item`` keeps answering ``item``. Writes are collected in
``written``; ``fail_send`` makes the next ``send`` raise it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Union

Step = Union[bytes, BaseException, Callable[[], Union[bytes, BaseException]]]


class MemoryStream:
    __slots__ = ("_reads", "_endless", "written", "timeouts", "closed", "shut", "fail_send",
                 "_timeout", "recv_calls")

    def __init__(self, reads: Iterable[Step] = (), endless: bytes | None = None) -> None:
        self._reads: deque[Step] = deque(reads)
        self._endless = endless
        self.written = bytearray()
        self.timeouts: list[float | None] = []    # every settimeout, in order
        self.closed = False
        self.shut: list[int] = []
        self.fail_send: BaseException | None = None
        self._timeout: float | None = None
        self.recv_calls = 0

    # -- script ------------------------------------------------------------------------
    def feed(self, *steps: Step) -> None:
        """Add steps to the read script."""
        self._reads.extend(steps)

    @property
    def pending_reads(self) -> int:
        return len(self._reads)

    def take_written(self) -> bytes:
        """What was written since the last call."""
        data = bytes(self.written)
        self.written.clear()
        return data

    # -- Stream ------------------------------------------------------------------------
    def recv(self, size: int, /) -> bytes:
        self.recv_calls += 1
        if self.closed:
            raise OSError("recv on a closed stream")
        if not self._reads:
            return self._endless if self._endless is not None else b""
        step = self._reads.popleft()
        if callable(step) and not isinstance(step, BaseException):
            step = step()
        if isinstance(step, BaseException):
            raise step
        if len(step) > size:
            self._reads.appendleft(step[size:])
            step = step[:size]
        return step

    def send(self, data: bytes, /) -> int:
        if self.fail_send is not None:
            error, self.fail_send = self.fail_send, None
            raise error
        if self.closed:
            raise BrokenPipeError("send on a closed stream")
        self.written += data
        return len(data)

    def sendall(self, data: bytes | memoryview, /) -> None:
        self.send(bytes(data))

    def settimeout(self, timeout: float | None, /) -> None:
        self._timeout = timeout
        self.timeouts.append(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def shutdown(self, how: int, /) -> None:
        self.shut.append(how)

    def close(self) -> None:
        self.closed = True
