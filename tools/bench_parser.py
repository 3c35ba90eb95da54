"""Micro benchmark of the parser engines: microseconds per typical message.

Requests: a browser-like GET with nine headers, fed one read per request to a single parser
(a keep-alive connection), taking the head and END of each. Responses: a JSON response
with a small Content-Length body, a fresh parser per response (as the upstream side does),
taking the head, the body and END. Not a test: nothing here passes or fails.

usage: python tools/bench_parser.py [COUNT]       (default 100000 of each)
"""
from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dakia_prefork.http.engines import Engine, available_engines, select_engine  # noqa: E402

REQUEST = (b"GET /api/v1/items?id=42&sort=desc HTTP/1.1\r\n"
           b"Host: api.example.com\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
           b"Accept: application/json, text/plain, */*\r\n"
           b"Accept-Language: en-US,en;q=0.5\r\n"
           b"Accept-Encoding: gzip, deflate, br\r\n"
           b"Connection: keep-alive\r\n"
           b"Cookie: session=abc123; theme=dark\r\n"
           b"Cache-Control: no-cache\r\n"
           b"X-Request-Id: 7f9c2ba4-e88f-11ee-9d3b-0242ac120002\r\n"
           b"\r\n")

RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            b"Server: upstream/1.0\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 27\r\n"
            b"Cache-Control: no-store\r\n"
            b"Vary: Accept-Encoding\r\n"
            b"X-Request-Id: 7f9c2ba4\r\n"
            b"\r\n"
            b'{"id": 42, "name": "thing"}')


def bench_requests(engine: Engine, count: int) -> float:
    """Seconds to parse ``count`` requests on one connection."""
    parser = engine.request_parser()
    feed, next_event = parser.feed, parser.next_event
    start = time.perf_counter()
    for _ in range(count):
        feed(REQUEST)
        next_event()
        next_event()
    elapsed = time.perf_counter() - start
    assert next_event() is None
    return elapsed


def bench_responses(engine: Engine, count: int) -> float:
    """Seconds to parse ``count`` responses, one parser each."""
    make = engine.response_parser
    start = time.perf_counter()
    for _ in range(count):
        parser = make(b"GET")
        parser.feed(RESPONSE)
        parser.next_event()
        parser.next_event()
        parser.next_event()
    return time.perf_counter() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"{count} messages each, best of 3 runs; µs per message")
    print(f"{'engine':<10} {'request':>9} {'response':>9}")
    results = {}
    for name in available_engines():
        engine = select_engine(name)
        bench_requests(engine, 1000)  # warm up
        gc.collect()
        req = min(bench_requests(engine, count) for _ in range(3)) / count * 1e6
        resp = min(bench_responses(engine, count) for _ in range(3)) / count * 1e6
        results[name] = (req, resp)
        print(f"{name:<10} {req:9.2f} {resp:9.2f}")
    if len(results) == 2:
        (hreq, hresp), (freq, fresp) = results["h11"], results["httptools"]
        print(f"{'speed-up':<10} {hreq / freq:8.1f}x {hresp / fresp:8.1f}x")


if __name__ == "__main__":
    main()
