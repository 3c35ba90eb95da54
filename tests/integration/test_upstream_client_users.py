"""The two users of the upstream client outside the proxy, against real upstream servers:
``try_file``'s fetch (http/fetch.py) and the health checker's probe, each on both engines.

The servers are ``harness.Upstream`` with handlers written here: they answer raw bytes, so
a response can be chunked, oversized, held back, truncated or not HTTP at all.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable

import pytest

from dakia_prefork.health.checker import CheckSpec, probe
from dakia_prefork.http.engines import select_engine
from dakia_prefork.http.fetch import SMALL_BODY, Fetcher, fetch
from dakia_prefork.http.upstream import Node, connect
from dakia_prefork.interceptors.resources import Fetched, FetchError, OpenSocket

from .harness import Handler, Received, Upstream, free_port

GARBAGE = b"garbage\r\n\r\n"


class Collect:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


class Sinks:
    """What a fetch wrote through its sinks."""

    def __init__(self) -> None:
        self.made: list[Collect] = []

    def __call__(self) -> Collect:
        self.made.append(Collect())
        return self.made[-1]


def raw(response: bytes) -> Handler:
    def handle(request: Received, sock: socket.socket) -> bytes:
        return response
    return handle


def chunked(*parts: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-origin: app\r\n\r\n" + \
        body + b"0\r\n\r\n"


def head_then_hold(head: bytes, release: threading.Event) -> Handler:
    """Send ``head`` and hold the rest until ``release`` (at most 5 s), then close."""
    def handle(request: Received, sock: socket.socket) -> None:
        sock.sendall(head)
        release.wait(5)
        return None
    return handle


def trickle(every: float, count: int) -> Handler:
    """A chunked 200 whose chunks come ``every`` seconds: each read is quick, the whole is
    slow."""
    def handle(request: Received, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(count):
            time.sleep(every)
            try:
                sock.sendall(b"1\r\nx\r\n")
            except OSError:
                return None
        return None
    return handle


def stall(seconds: float) -> Handler:
    def handle(request: Received, sock: socket.socket) -> bytes:
        time.sleep(seconds)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    return handle


def opener(port: int) -> OpenSocket:
    return lambda timeout: connect(("tcp", "127.0.0.1", port), timeout)


UpstreamMaker = Callable[..., Upstream]


# -- fetch ----------------------------------------------------------------------------------
def fetch_from(up: Upstream, engine: str, sinks: Sinks, *, timeout: float = 5.0,
               max_size: int = 1000, target: bytes = b"/f") -> Fetched:
    headers = [(b"host", b"app"), (b"connection", b"keep-alive"), (b"x-asked", b"1")]
    return Fetcher(lambda: select_engine(engine))(opener(up.port), target, headers, timeout,
                                          max_size, sinks)


def test_fetch_stores_a_chunked_200(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(chunked(b"hello", b" world")))
    sinks = Sinks()
    fetched = fetch_from(up, engine, sinks)
    assert (fetched.status, fetched.stored, fetched.too_large) == (200, True, False)
    assert [bytes(s.data) for s in sinks.made] == [b"hello world"]
    assert fetched.body == b"" and (b"x-origin", b"app") in fetched.headers
    assert not any(name == b"transfer-encoding" for name, _ in fetched.headers)
    # A fresh connection, closed after: the caller's hop-by-hop headers are not forwarded.
    (received,) = up.received
    assert received.header_all("connection") == ["close"] and received.header("x-asked") == "1"


def test_fetch_stops_before_a_declared_body_over_max_size(engine: str,
                                                          upstreams: UpstreamMaker) -> None:
    release = threading.Event()
    up = upstreams(head_then_hold(b"HTTP/1.1 200 OK\r\ncontent-length: 1001\r\n\r\n", release))
    sinks = Sinks()
    started = time.monotonic()
    try:
        fetched = fetch_from(up, engine, sinks, max_size=1000)
    finally:
        release.set()
    assert (fetched.status, fetched.too_large, fetched.stored) == (200, True, False)
    assert sinks.made == [] and time.monotonic() - started < 2     # no body was awaited


def test_fetch_stops_a_chunked_200_that_grows_over_max_size(engine: str,
                                                            upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(chunked(b"a" * 600, b"b" * 600)))
    sinks = Sinks()
    fetched = fetch_from(up, engine, sinks, max_size=1000)
    assert (fetched.status, fetched.too_large, fetched.stored) == (200, True, False)
    assert len(sinks.made) == 1 and len(sinks.made[0].data) <= 1000


def test_fetch_keeps_a_small_404_in_memory(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n"
                       b"content-length: 13\r\n\r\nno such thing"))
    sinks = Sinks()
    fetched = fetch_from(up, engine, sinks)
    assert (fetched.status, fetched.body, fetched.stored, fetched.too_large) == (
        404, b"no such thing", False, False)
    assert (b"content-type", b"text/plain") in fetched.headers and sinks.made == []


def test_fetch_does_not_keep_a_big_404(engine: str, upstreams: UpstreamMaker) -> None:
    body = b"x" * (SMALL_BODY + 1)
    for response in (b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body),
                     b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)):
        up = upstreams(raw(response))
        sinks = Sinks()
        fetched = fetch_from(up, engine, sinks, max_size=10 * SMALL_BODY)
        assert (fetched.status, fetched.too_large, fetched.body) == (404, True, b"")
        assert sinks.made == []


def test_fetch_skips_informational_heads(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
    sinks = Sinks()
    fetched = fetch_from(up, engine, sinks)
    assert (fetched.status, fetched.stored, bytes(sinks.made[0].data)) == (200, True, b"ok")


@pytest.mark.parametrize("response, named", [
    (GARBAGE, "illegal status line"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", "invalid response"),   # truncated
    (b"", "without responding"),
])
def test_fetch_answers_502_for_a_broken_response(engine: str, upstreams: UpstreamMaker,
                                                 response: bytes, named: str) -> None:
    def handle(request: Received, sock: socket.socket) -> None:
        sock.sendall(response)
        return None                   # and close
    up = upstreams(handle)
    with pytest.raises(FetchError) as failed:
        fetch_from(up, engine, Sinks())
    assert failed.value.status == 502 and named in str(failed.value), str(failed.value)


def test_fetch_answers_502_when_refused(engine: str) -> None:
    with pytest.raises(FetchError) as failed:
        fetch(select_engine(engine), opener(free_port()), b"/", [(b"host", b"x")], 2.0, 10,
              Sinks())
    assert failed.value.status == 502 and "connect failed" in str(failed.value)


def test_fetch_answers_504_within_its_timeout(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(stall(3))
    started = time.monotonic()
    with pytest.raises(FetchError) as failed:
        fetch_from(up, engine, Sinks(), timeout=0.4)
    assert failed.value.status == 504 and time.monotonic() - started < 1.5


def test_fetch_has_one_deadline_for_the_whole_exchange(engine: str,
                                                       upstreams: UpstreamMaker) -> None:
    up = upstreams(trickle(0.1, 30))            # every read well within 0.6 s; all of it not
    sinks = Sinks()
    started = time.monotonic()
    with pytest.raises(FetchError) as failed:
        fetch_from(up, engine, sinks, timeout=0.6, max_size=1000)
    assert failed.value.status == 504 and time.monotonic() - started < 1.5
    assert 0 < len(sinks.made[0].data) < 30


def test_a_failing_sink_is_not_an_upstream_failure(engine: str,
                                                   upstreams: UpstreamMaker) -> None:
    class Full:
        def write(self, data: bytes) -> None:
            raise OSError(28, "No space left on device")

    up = upstreams(raw(chunked(b"hello")))
    with pytest.raises(OSError) as failed:
        fetch(select_engine(engine), opener(up.port), b"/", [(b"host", b"x")], 2.0, 1000, Full)
    assert not isinstance(failed.value, FetchError) and failed.value.errno == 28


# -- the health probe -----------------------------------------------------------------------
def check(up_port: int, engine: str, *, timeout: float = 2.0,
          expected: frozenset[int] = frozenset({200})) -> tuple[bool, str]:
    spec = CheckSpec("/hc", 60.0, timeout, 1, 1, expected)
    return probe(Node(("tcp", "127.0.0.1", up_port)), spec, None, select_engine(engine))


def test_probe_reads_a_chunked_200(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(chunked(b"fine")))
    assert check(up.port, engine) == (True, "status 200")
    (received,) = up.received
    assert received.target == "/hc" and received.header("connection") == "close"
    assert received.header("user-agent") == "dakia-health-check"
    assert received.header("host") == f"127.0.0.1:{up.port}"


def test_probe_does_not_wait_for_the_body(engine: str, upstreams: UpstreamMaker) -> None:
    release = threading.Event()
    up = upstreams(head_then_hold(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n",
                                  release))
    started = time.monotonic()
    try:
        assert check(up.port, engine) == (True, "status 200")
    finally:
        release.set()
    assert time.monotonic() - started < 1.5


def test_probe_checks_the_expected_statuses(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope"))
    assert check(up.port, engine) == (False, "status 404 (expected 200)")
    assert check(up.port, engine, expected=frozenset({204, 200})) == (
        False, "status 404 (expected 200, 204)")
    assert check(up.port, engine, expected=frozenset({200, 404})) == (True, "status 404")


def test_probe_reads_the_final_head(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\n"
                       b"content-length: 0\r\n\r\n"))
    assert check(up.port, engine) == (False, "status 503 (expected 200)")


@pytest.mark.parametrize("response, named", [
    (GARBAGE, "invalid response: illegal status line"),
    (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "invalid response"),
    (b"HTTP/1.1 200 OK\r\n", "invalid response"),                # closed inside the head
    (b"", "without responding"),
])
def test_probe_fails_a_response_the_engine_refuses(engine: str, upstreams: UpstreamMaker,
                                                   response: bytes, named: str) -> None:
    def handle(request: Received, sock: socket.socket) -> None:
        sock.sendall(response)
        return None
    up = upstreams(handle)
    ok, seen = check(up.port, engine)
    assert not ok and named in seen, seen


def test_probe_fails_when_refused(engine: str) -> None:
    ok, seen = check(free_port(), engine)
    assert not ok and seen.startswith("connect failed: "), seen


def test_probe_times_out(engine: str, upstreams: UpstreamMaker) -> None:
    up = upstreams(stall(3))
    started = time.monotonic()
    assert check(up.port, engine, timeout=0.3) == (False, "no response head within 0.3s")
    assert time.monotonic() - started < 1.5
