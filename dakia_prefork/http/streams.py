"""The I/O seam: the few socket operations the request path uses, as a Protocol.

A gevent socket (in a worker), a plain socket (in a tool) or a TLS socket satisfies it as
it is, so the hot path pays no wrapper; ``memory.MemoryStream`` is the in-memory double the
unit tests drive the connection, the exchange and the upstream client with.

Semantics are the socket module's: ``recv`` returns ``b""`` at EOF and raises
``TimeoutError`` when the timeout set by ``settimeout`` expires, and any ``OSError`` for a
broken connection; ``send`` may write less than it is given.
"""
from __future__ import annotations

from typing import Protocol


class Stream(Protocol):
    def recv(self, size: int, /) -> bytes: ...

    def send(self, data: bytes, /) -> int: ...

    def sendall(self, data: bytes | memoryview, /) -> None: ...

    def settimeout(self, timeout: float | None, /) -> None: ...

    def gettimeout(self) -> float | None: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


def send_all(stream: Stream, data: bytes) -> None:
    """``sendall`` without its fixed cost: gevent's sendall asks the kernel for SO_SNDBUF
    (a syscall) on every call, and most writes here are small and go out in one ``send``."""
    sent = stream.send(data)
    if sent != len(data):
        stream.sendall(memoryview(data)[sent:])
