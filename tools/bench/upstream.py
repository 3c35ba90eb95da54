"""Benchmark upstream: a gevent server answering a fixed 12-byte body to every request.

Deliberately minimal (it splits on the blank line and ignores bodies), so it is never the
bottleneck: ~90k requests/s on one core here. Not for anything but GET benchmarks.

usage: python tools/bench/upstream.py PORT
"""
from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from gevent.server import StreamServer  # noqa: E402

BODY = b"hello world\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
            % (len(BODY), BODY))


def handle(sock: socket.socket, _address: Any) -> None:
    pending = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        pending += data
        answers = pending.count(b"\r\n\r\n")
        if answers:
            pending = pending[pending.rfind(b"\r\n\r\n") + 4:]
            sock.sendall(RESPONSE * answers)
    sock.close()


if __name__ == "__main__":
    StreamServer(("127.0.0.1", int(sys.argv[1])), handle, backlog=2048).serve_forever()
