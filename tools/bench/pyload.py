"""Fallback load generator for tools/bench when wrk is absent: gevent keep-alive clients.

usage: python tools/bench/pyload.py PORT CONNECTIONS DURATION PATH [HOST]

Prints one JSON object with the fields of ``bench_load.LoadResult``. Far slower than wrk
(the clients share one core with Python's overhead), so its req/s are a floor of what the
server does, comparable only with other runs of this same generator.
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from bench_load import Request, percentile, response_end  # noqa: E402


class Tally:
    """Latencies (s) and failures of every client of one run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.socket_errors = 0


def client(port: int, wire: bytes, end: float, tally: Tally) -> None:
    """One keep-alive connection sending ``wire`` until ``end``, one request at a time."""
    try:
        sock = socket.create_connection(("127.0.0.1", port))
    except OSError:
        tally.socket_errors += 1
        return
    with sock:
        try:
            exchange(sock, wire, end, tally)
        except OSError:
            tally.socket_errors += 1


def exchange(sock: socket.socket, wire: bytes, end: float, tally: Tally) -> None:
    """Request, whole response, again, until ``end``; a closed connection is an error."""
    pending = b""
    while time.monotonic() < end:
        started = time.monotonic()
        sock.sendall(wire)
        answer = response_end(pending)
        while answer is None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            pending += data
            answer = response_end(pending)
        status, length = answer
        pending = pending[length:]
        tally.latencies.append(time.monotonic() - started)
        if not 200 <= status < 300:
            tally.non_2xx += 1


def main() -> None:
    port, connections, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    request = Request(path=sys.argv[4], host=sys.argv[5] if len(sys.argv) > 5 and sys.argv[5]
                      else None)
    tally = Tally()
    end = time.monotonic() + duration
    gevent.joinall([gevent.spawn(client, port, request.wire(port), end, tally)
                    for _ in range(connections)])
    ordered = sorted(tally.latencies)
    print(json.dumps({"rps": len(ordered) / duration, "requests": len(ordered),
                      "p50_ms": percentile(ordered, 0.50) * 1e3,
                      "p99_ms": percentile(ordered, 0.99) * 1e3,
                      "non_2xx": tally.non_2xx, "socket_errors": tally.socket_errors}))


if __name__ == "__main__":
    main()
