"""The request path without sockets: a worker context from a real config, a client and
upstream nodes that are in-memory streams.

``Harness(engine)`` validates a small config (one gateway ``g`` answering ``example.com``,
one upstream ``app`` of ``nodes`` nodes at 10.0.0.1, 10.0.0.2, ... port 80, ``http_parser``
the engine under test), builds its ``Settings`` and ``Runtime`` with no shared memory
(round robin then keeps a per-worker rotation starting at the first node, so the node of
each pick is known) and a ``WorkerContext`` around it with a ``FakePool``. New upstream
connections come from what the test scripted for the node (``h.upstream(...)``: one
stream per connection, or an exception the connect raises); ``h.serve(...)`` runs a
``DownstreamConnection`` over a client stream until the loop ends and returns that stream.

Every stream is a ``WatchedStream``: a ``MemoryStream`` that also records, for each
``recv`` and ``send``, the time left before the serving connection's deadline. The limits
and timeouts of the config are all different numbers, so a test can tell which one a wait
ran under (``waits``) or a socket got (``timeouts``). A scripted connect leaves the
connect timeout on its stream, as ``open_connection`` does on a socket.
"""
from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import h11
import pytest

from dakia_prefork.config import validate
from dakia_prefork.config.model import Settings
from dakia_prefork.http import client
from dakia_prefork.http.connection import DownstreamConnection
from dakia_prefork.http.memory import MemoryStream, Step
from dakia_prefork.http.upstream import Node, Resolver, UpstreamConnection, UpstreamPool
from dakia_prefork.message.heads import RequestHead
from dakia_prefork.worker.accesslog import AccessLog
from dakia_prefork.worker.context import ListenerInfo, WorkerContext
from dakia_prefork.worker.runtime import Runtime, UpstreamRuntime

ENGINES = ["h11", "httptools"]

HEADER_TIMEOUT = 11.0
KEEPALIVE_TIMEOUT = 12.0
BODY_TIMEOUT = 13.0
SEND_TIMEOUT = 14.0
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 21.0
WRITE_TIMEOUT = 22.0

PEER = "192.0.2.7"


def make_config(engine: str = "h11", nodes: int = 1, retries: int = 0,
                max_body_bytes: int | None = None, keepalive_timeout: float = KEEPALIVE_TIMEOUT,
                interceptors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A raw config (before validation) of one gateway, as a user would write it."""
    return {
        "http_parser": engine,
        "access_log": "off",
        "limits": {"client_header_timeout": HEADER_TIMEOUT,
                   "keepalive_timeout": keepalive_timeout,
                   "client_body_timeout": BODY_TIMEOUT, "send_timeout": SEND_TIMEOUT,
                   "max_body_bytes": max_body_bytes},
        "gateways": [{
            "name": "g",
            "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
            "downstreams": [{"host": "example.com"}],
            "upstreams": [{
                "name": "app", "default": True, "retries": retries,
                "timeouts": {"connect": CONNECT_TIMEOUT, "read": READ_TIMEOUT,
                             "write": WRITE_TIMEOUT, "idle": 60},
                "upstream_nodes": [{"address": {"host": f"10.0.0.{i + 1}", "port": 80}}
                                   for i in range(nodes)],
            }],
            "routers": [{"upstream": "app", "filter": "api"}],
            "filters": [{"name": "api", "path": {"$starts_with": "/api"}}],
            "interceptors": interceptors or [],
        }],
    }


class FakePool(UpstreamPool):
    """The worker's pool without liveness probes or clocks: idle connections are reused
    last in, first out, and every connection given back is recorded."""

    def __init__(self) -> None:
        super().__init__(max_idle=8)
        self.idle: dict[Hashable, list[UpstreamConnection]] = {}
        self.returned: list[UpstreamConnection] = []

    def take_idle(self, key: Hashable, idle_timeout: float) -> UpstreamConnection | None:
        idle = self.idle.get(key)
        return idle.pop() if idle else None

    def put_idle(self, conn: UpstreamConnection, idle_timeout: float = 60.0) -> None:
        self.returned.append(conn)
        self.idle.setdefault(conn.key, []).append(conn)


class RecordingLog(AccessLog):
    """The access log as (status, body bytes sent) pairs."""

    def __init__(self) -> None:
        super().__init__("off", "combined")
        self.enabled = True
        self.lines: list[tuple[int, int]] = []

    def write(self, exchange: Any, status: int, sent: int, seconds: float,
              upstream_seconds: float, received: int) -> None:
        self.lines.append((status, sent))


class WatchedStream(MemoryStream):
    """A MemoryStream that records, for every ``recv`` and ``send``, how long the wait it
    is part of may still last (``watch()``: the seconds left before the serving
    connection's deadline, None when no deadline is set), rounded to whole seconds."""

    __slots__ = ("watch", "waits")

    def __init__(self, reads: Iterable[Step], watch: Callable[[], float | None]) -> None:
        super().__init__(reads)
        self.watch = watch
        self.waits: list[tuple[str, int | None]] = []

    def _note(self, kind: str) -> None:
        left = self.watch()
        self.waits.append((kind, None if left is None else round(left)))

    def recv(self, size: int, /) -> bytes:
        self._note("recv")
        return super().recv(size)

    def send(self, data: bytes, /) -> int:
        self._note("send")
        return super().send(data)

    def sendall(self, data: bytes | memoryview, /) -> None:
        MemoryStream.send(self, bytes(data))       # the rest of a send: the same wait


def upstream_connection(stream: MemoryStream, node: Node) -> UpstreamConnection:
    # UpstreamConnection is typed for sockets; a MemoryStream does all that the client uses.
    return UpstreamConnection(cast(socket.socket, stream), node.pool_key)


def runtime_of(engine: str, version: int = 1, log: AccessLog | None = None,
               **config: Any) -> Runtime:
    """The runtime a worker builds for ``make_config(engine, **config)``."""
    normalised, _notices = validate(make_config(engine, **config), base_dir="/")
    return Runtime(version, Settings.from_config(normalised), None,
                   access_log=log or RecordingLog())


class Harness:
    def __init__(self, engine: str, **config: Any) -> None:
        self.engine = engine
        self.log = RecordingLog()
        self.runtime = runtime_of(engine, log=self.log, **config)
        self.pool = FakePool()
        self.ctx = WorkerContext(self.runtime, self.pool)
        self.listener = ListenerInfo(gateway="g", scheme="http", label="127.0.0.1:8080")
        self._scripts: dict[str, deque[WatchedStream | BaseException]] = {}
        self.connects: list[str] = []           # node labels, one per connect attempt
        self.connections: list[WatchedStream] = []  # every upstream stream opened
        self.current: DownstreamConnection | None = None    # the one serve() runs

    def left(self) -> float | None:
        """Seconds left in the current connection's wait (None: no deadline set)."""
        conn = self.current
        if conn is None or not conn.deadline:
            return None
        return conn.deadline - time.monotonic()

    # -- upstream side --------------------------------------------------------------------
    @property
    def app(self) -> UpstreamRuntime:
        return self.runtime.gateways["g"].upstreams["app"]

    def node(self, index: int = 0) -> Node:
        return self.app.nodes[index]

    def upstream(self, *reads: Step, node: int = 0) -> WatchedStream:
        """Script the next new connection to node ``node``: what it will answer."""
        stream = WatchedStream(reads, self.left)
        self._scripts.setdefault(self.node(node).label, deque()).append(stream)
        return stream

    def refuse(self, error: BaseException | None = None, node: int = 0) -> None:
        """Make the next connect to node ``node`` fail (refused, unless ``error``)."""
        self._scripts.setdefault(self.node(node).label, deque()).append(
            error if error is not None else ConnectionRefusedError(111, "refused"))

    def idle(self, *reads: Step, node: int = 0) -> WatchedStream:
        """Put a pooled idle connection to node ``node`` that will answer ``reads``."""
        stream = WatchedStream(reads, self.left)
        self.pool.idle.setdefault(self.node(node).pool_key, []).append(
            upstream_connection(stream, self.node(node)))
        return stream

    def open_connection(self, node: Node, timeout: float,
                        resolver: Resolver | None) -> socket.socket:
        """Stands in for ``upstream.open_connection``."""
        self.connects.append(node.label)
        script = self._scripts.get(node.label)
        if not script:
            raise ConnectionRefusedError(111, f"nothing scripted for {node.label}")
        step = script.popleft()
        if isinstance(step, BaseException):
            raise step
        step.settimeout(timeout)              # as a real connect leaves it
        self.connections.append(step)
        return cast(socket.socket, step)

    @property
    def unused_scripts(self) -> int:
        return sum(len(script) for script in self._scripts.values())

    # -- client side ----------------------------------------------------------------------
    def connection(self, *reads: Step, peer: str = PEER) -> tuple[DownstreamConnection,
                                                                  WatchedStream]:
        stream = WatchedStream(reads, self.left)
        conn = self.current = DownstreamConnection(self.ctx, stream, peer, self.listener)
        return conn, stream

    def serve(self, *reads: Step, peer: str = PEER) -> WatchedStream:
        """Run a client connection that sends ``reads`` (then EOF) to its end."""
        conn, stream = self.connection(*reads, peer=peer)
        conn.run()
        return stream


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness(engine: str, monkeypatch: pytest.MonkeyPatch) -> MakeHarness:
    """``make_harness(**config)``: a Harness on the test's engine whose connects are
    scripted (``client.open_connection`` replaced for the test)."""
    def make(**config: Any) -> Harness:
        harness = Harness(engine, **config)
        monkeypatch.setattr(client, "open_connection", harness.open_connection)
        return harness

    return make


def get(target: bytes = b"/api/x", host: bytes = b"example.com", version: bytes = b"1.1",
        headers: bytes = b"", method: bytes = b"GET") -> bytes:
    """A request head with no body."""
    return b"%s %s HTTP/%s\r\nhost: %s\r\n%s\r\n" % (method, target, version, host, headers)


def ok(body: bytes = b"hello", headers: bytes = b"", status: bytes = b"200 OK") -> bytes:
    """An upstream response with a Content-Length body."""
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), headers,
                                                                body)


@dataclass
class Response:
    """One response as h11 (the strict reference) reads it off the client's stream."""
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    informational: list[int] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"{name!r} repeated: {values}"
        return values[0] if values else None


def responses(written: bytes | bytearray, *methods: bytes) -> list[Response]:
    """The responses in ``written``, one per request method, read by an h11 client; what
    comes after the last one must be nothing (no second answer, no stray bytes)."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(bytes(written))
    conn.receive_data(b"")          # the gateway's side is done: EOF ends a close-delimited body
    out: list[Response] = []
    for method in methods:
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target="/", headers=[("host", "example.com")]))
        conn.send(h11.EndOfMessage())
        informational: list[int] = []
        response: Response | None = None
        while True:
            event = conn.next_event()
            assert event is not h11.NEED_DATA, f"response {len(out) + 1} is cut short"
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                response = Response(event.status_code, list(event.headers), b"",
                                    informational)
            elif isinstance(event, h11.Data):
                assert response is not None
                response.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert response is not None
        out.append(response)
    rest, _closed = conn.trailing_data
    assert rest == b"", f"bytes after the last response: {rest!r}"
    return out
