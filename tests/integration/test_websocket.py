"""WebSocket proxying through the real gateway, with real clients and a real upstream.

The upstream is the ``websockets`` library's server (in a thread of the test process),
echoing every message; the clients are the same library's client, or a raw socket where a
test needs to control exactly which bytes travel together. Both engines run every test.
"""
from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import struct
import ssl
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import Server, ServerConnection, serve

from tests.tlsutil import make_pki

from .harness import Gateway, Received, free_port, node, read_responses, wait_until

TIMEOUT = 10.0


class WsUpstream:
    """A WebSocket echo server on a free port. ``/forbidden`` is answered 403 and a
    request without Upgrade 200 ``plain``, both before any handshake; every request head
    it got is kept in ``requests`` and the close code of each ended WebSocket in
    ``closes``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.closes: list[int | None] = []
        self._lock = threading.Lock()
        self.server: Server = serve(self._echo, "127.0.0.1", 0,
                                    process_request=self._process_request,
                                    ping_interval=None, close_timeout=5, ssl=tls)
        self.port: int = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        with self._lock:
            self.requests.append({"path": request.path,
                                  **{k.lower(): v for k, v in request.headers.raw_items()}})
        if request.path == "/forbidden":
            return connection.respond(403, "forbidden\n")
        if "Upgrade" not in request.headers:
            return connection.respond(200, "plain\n")
        return None

    def _echo(self, ws: ServerConnection) -> None:
        try:
            for message in ws:
                ws.send(message)
        except ConnectionClosed:
            pass
        with self._lock:
            self.closes.append(ws.close_code)

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(TIMEOUT)


@pytest.fixture
def ws_upstream() -> Iterator[WsUpstream]:
    up = WsUpstream()
    yield up
    up.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., ClientConnection]]:
    """``clients(url, **kwargs)``: a connected websockets client, closed in the finalizer."""
    with contextlib.ExitStack() as stack:
        def make(url: str, **kwargs: Any) -> ClientConnection:
            return stack.enter_context(connect(url, open_timeout=TIMEOUT,
                                               close_timeout=TIMEOUT, ping_interval=None,
                                               **kwargs))

        yield make


def _refused(url: str, **kwargs: Any) -> int:
    """The status of a handshake the gateway (or the upstream) refused."""
    with pytest.raises(InvalidStatus) as refused:
        with connect(url, open_timeout=TIMEOUT, **kwargs):
            pass
    status: int = refused.value.response.status_code
    return status


def _ws_url(gw: Gateway, path: str = "/echo") -> str:
    return f"ws://127.0.0.1:{gw.port}{path}"


def _upstream(up: WsUpstream, **settings: Any) -> dict[str, Any]:
    return {"name": "ws", "upstream_nodes": [node(up.port)], **settings}


def _access_lines(gw: Gateway) -> list[str]:
    try:
        with open(gw.config["access_log"], encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _tunnel_logged(gw: Gateway, path: str) -> list[str]:
    """The access-log lines of ended tunnels to ``path`` (combined format: status 101)."""
    return [line for line in _access_lines(gw) if f"GET {path} HTTP/1.1\" 101 " in line]


def _handshake(path: bytes = b"/echo", extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"%s\r\n" % (path, key, extra))


def _read_until(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    sock.settimeout(TIMEOUT)
    data = b""
    while not done(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# A client's text frame "hello", masked with a zero key (RFC 6455 5.3: clients mask).
_MASKED_HELLO = b"\x81\x85\x00\x00\x00\x00hello"
_HELLO = b"\x81\x05hello"                # the server's echo: unmasked


def test_frames_are_echoed_pings_answered_and_the_close_is_clean(
        engine: str, gateways, ws_upstream: WsUpstream, clients) -> None:
    gw = gateways([_upstream(ws_upstream)], engine=engine)
    ws = clients(_ws_url(gw))
    ws.send("hello, text")
    assert ws.recv(timeout=TIMEOUT) == "hello, text"
    ws.send(b"\x00\x01binary\xff")
    assert ws.recv(timeout=TIMEOUT) == b"\x00\x01binary\xff"
    big = os.urandom(300_000)          # several reads each way, through bounded buffers
    ws.send(big)
    assert ws.recv(timeout=TIMEOUT) == big
    assert ws.ping(b"are you there").wait(TIMEOUT)
    ws.close()
    assert ws.close_code == 1000
    wait_until(lambda: ws_upstream.closes == [1000], TIMEOUT, "the upstream to see the close")
    handshake = ws_upstream.requests[0]
    assert handshake["upgrade"] == "websocket" and handshake["connection"] == "upgrade"
    assert handshake["sec-websocket-version"] == "13" and "sec-websocket-key" in handshake
    assert handshake["x-forwarded-for"] == "127.0.0.1"
    # The access-log line is written when the tunnel ends: 101, bytes both ways.
    line = wait_until(lambda: _tunnel_logged(gw, "/echo"), TIMEOUT, "the tunnel's log line")
    sent = int(line[0].split('" 101 ')[1].split()[0])
    assert sent > len(big)                 # body_bytes_sent: what went down the tunnel


def test_bytes_sent_right_behind_the_handshake_are_relayed(
        engine: str, gateways, ws_upstream: WsUpstream) -> None:
    """A frame in the same packet as the client's handshake is read with it by the parser:
    it must reach the upstream once the 101 is in."""
    gw = gateways([_upstream(ws_upstream)], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake() + _MASKED_HELLO)
        data = _read_until(sock, lambda d: b"\r\n\r\n" in d
                           and d.split(b"\r\n\r\n", 1)[1].startswith(_HELLO))
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ")
        lowered = head.lower()
        assert b"\r\nupgrade: websocket" in lowered and b"\r\nconnection: upgrade" in lowered
        assert b"sec-websocket-accept: " in lowered
        assert rest == _HELLO


def test_bytes_sent_right_behind_the_101_are_relayed(engine: str, gateways,
                                                     upstreams) -> None:
    """An upstream that writes its first frame in the same packet as its 101: the response
    parser holds it, and it must reach the client."""
    def switch(request: Received, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nX-Up: 1\r\n\r\n" + _HELLO)
        # None: the harness closes the connection, which ends the tunnel.
    up = upstreams(switch)
    gw = gateways([{"name": "raw", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake())
        # The upstream's server closes after its answer: the tunnel ends, the client sees EOF.
        data = _read_until(sock, lambda d: False)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ") and b"\r\nx-up: 1" in head.lower()
    assert rest == _HELLO
    assert up.received[0].header("upgrade") == "websocket"


def test_a_refused_handshake_is_a_normal_response_and_the_connection_stays_http(
        engine: str, gateways, ws_upstream: WsUpstream) -> None:
    gw = gateways([_upstream(ws_upstream)], engine=engine)
    assert _refused(_ws_url(gw, "/forbidden")) == 403
    with socket.create_connection(("127.0.0.1", gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake(b"/forbidden"))
        [(response, body)] = read_responses(sock, 1)
        assert (response.status_code, body) == (403, b"forbidden\n")
        # The same connection serves the next request as plain HTTP.
        sock.sendall(b"GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        [(response, body)] = read_responses(sock, 1)
        assert (response.status_code, body) == (200, b"plain\n")
    assert [r["path"] for r in ws_upstream.requests] == ["/forbidden", "/forbidden", "/plain"]
    assert "upgrade" not in ws_upstream.requests[2]


def test_auth_and_rate_limits_apply_to_the_handshake(engine: str, gateways,
                                                     ws_upstream: WsUpstream, clients) -> None:
    gw = gateways([_upstream(ws_upstream)], engine=engine, gateway={
        "routers": [{"name": "limited", "upstream": "ws", "filter": "limited"},
                    {"name": "keyed", "upstream": "ws"}],
        "filters": [{"name": "limited", "path": "/limited"},
                    {"name": "keyed", "path": {"$ne": "/limited"}}],
        "interceptors": [
            {"name": "key_auth", "filter": "keyed",
             "config": {"header": "X-API-Key", "keys": [{"name": "ci", "key": "s3cret-websocket-key"}]}},
            {"name": "rate_limiter", "filter": "limited",
             "config": {"capacity": 1, "refill_rate": 1, "refill_interval": 3600000}},
        ]})
    assert _refused(_ws_url(gw)) == 401
    assert _refused(_ws_url(gw), additional_headers={"X-API-Key": "wrong"}) == 403
    assert ws_upstream.requests == []                  # refused before the upstream
    ws = clients(_ws_url(gw), additional_headers={"X-API-Key": "s3cret-websocket-key"})
    ws.send("authorised")
    assert ws.recv(timeout=TIMEOUT) == "authorised"
    limited = clients(_ws_url(gw, "/limited"))
    limited.send("first")
    assert limited.recv(timeout=TIMEOUT) == "first"
    with pytest.raises(InvalidStatus) as refused:
        with connect(_ws_url(gw, "/limited"), open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"]
    assert [r["path"] for r in ws_upstream.requests] == ["/echo", "/limited"]


def test_an_idle_tunnel_is_closed_after_websocket_idle(engine: str, gateways,
                                                       ws_upstream: WsUpstream,
                                                       clients) -> None:
    gw = gateways([_upstream(ws_upstream, timeouts={"websocket_idle": 1.5})], engine=engine)
    ws = clients(_ws_url(gw))
    # Traffic, either way, keeps the tunnel open past websocket_idle...
    started = time.monotonic()
    while True:
        ws.send("tick")
        assert ws.recv(timeout=TIMEOUT) == "tick"
        last = time.monotonic()          # the gateway relayed its last byte just before
        if last - started > 3.0:
            break
        time.sleep(0.3)
    # ...and silence closes it, websocket_idle after the last byte (within the sweep).
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=TIMEOUT)
    waited = time.monotonic() - last
    assert 1.4 <= waited < 5.0, waited
    wait_until(lambda: _tunnel_logged(gw, "/echo"), TIMEOUT, "the tunnel's log line")


def _masked_binary(payload: bytes) -> bytes:
    """A client's binary frame of ``payload`` (up to 64 KiB), masked with a zero key."""
    assert len(payload) < 65536
    return b"\x82\xfe" + struct.pack("!H", len(payload)) + b"\x00\x00\x00\x00" + payload


def test_a_client_that_stops_reading_is_dropped_at_send_timeout(engine: str, gateways,
                                                                ws_upstream: WsUpstream) -> None:
    """It keeps sending (so the tunnel is never idle) and never reads what the upstream
    echoes: the gateway's write to it blocks, and send_timeout ends the tunnel."""
    gw = gateways([_upstream(ws_upstream, timeouts={"websocket_idle": 60})], engine=engine,
                  extra={"limits": {"send_timeout": 1}})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(_handshake())
        head = _read_until(sock, lambda d: b"\r\n\r\n" in d)
        assert head.startswith(b"HTTP/1.1 101 ")
        frame = _masked_binary(os.urandom(60_000))
        started = time.monotonic()
        dropped = None
        while time.monotonic() - started < 20:
            try:
                sock.sendall(frame)
            except OSError:              # reset or broken pipe: the gateway closed it
                dropped = time.monotonic() - started
                break
            time.sleep(0.05)
        assert dropped is not None, "the tunnel of a client that never reads stayed open"
    finally:
        sock.close()
    # Buffers fill in well under a second here; then 1 s of send_timeout and the sweep.
    assert dropped < 10, dropped
    line = wait_until(lambda: _tunnel_logged(gw, "/echo"), TIMEOUT, "the tunnel's log line")
    assert len(line) == 1


def test_a_reload_keeps_open_websockets_and_reaches_new_ones(engine: str, gateways,
                                                             ws_upstream: WsUpstream,
                                                             clients) -> None:
    gw = gateways([_upstream(ws_upstream)], engine=engine)
    before = clients(_ws_url(gw))
    before.send("before")
    assert before.recv(timeout=TIMEOUT) == "before"
    version = gw.workers()[0]["config_version"]
    gw.config["gateways"][0]["upstreams"][0]["timeouts"] = {"websocket_idle": 1.5}
    gw.write_config()
    gw.signal(signal.SIGHUP)
    wait_until(lambda: all(w["config_version"] > version for w in gw.workers()), TIMEOUT,
               "the workers to serve the new version")
    before.send("after the reload")
    assert before.recv(timeout=TIMEOUT) == "after the reload"
    # A new tunnel runs on the new version: its websocket_idle closes it when quiet. The
    # old one keeps the version it started on (3600 s): it is still open afterwards.
    after = clients(_ws_url(gw))
    after.send("new")
    assert after.recv(timeout=TIMEOUT) == "new"
    with pytest.raises(ConnectionClosed):
        after.recv(timeout=TIMEOUT)
    before.send("still here")
    assert before.recv(timeout=TIMEOUT) == "still here"


def test_a_reload_that_rolls_the_workers_lets_websockets_run_until_graceful_timeout(
        engine: str, gateways, ws_upstream: WsUpstream, clients) -> None:
    """A listener change retires the worker that holds the tunnel: it drains, the tunnel
    keeps working, and it is closed at graceful_timeout while the new worker serves."""
    gw = gateways([_upstream(ws_upstream)], engine=engine, extra={"graceful_timeout": 3})
    old_pid = gw.workers()[0]["pid"]
    ws = clients(_ws_url(gw))
    ws.send("before")
    assert ws.recv(timeout=TIMEOUT) == "before"
    gw.config["gateways"][0]["bind_addresses"].append({"host": "127.0.0.1",
                                                       "port": free_port()})
    gw.write_config()
    gw.signal(signal.SIGHUP)
    retired_at = wait_until(
        lambda: any(w["pid"] == old_pid and w["state"] == "draining" for w in gw.workers())
        and time.monotonic(), TIMEOUT, "the old worker to be retired")
    ws.send("while the old worker drains")
    assert ws.recv(timeout=TIMEOUT) == "while the old worker drains"
    fresh = clients(_ws_url(gw))                  # accepted by the new worker
    fresh.send("new worker")
    assert fresh.recv(timeout=TIMEOUT) == "new worker"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=TIMEOUT)
    assert time.monotonic() - retired_at < 8.0
    wait_until(lambda: all(w["pid"] != old_pid for w in gw.workers()), TIMEOUT,
               "the old worker to exit")
    fresh.send("still served")
    assert fresh.recv(timeout=TIMEOUT) == "still served"
    wait_until(lambda: _tunnel_logged(gw, "/echo"), TIMEOUT, "the closed tunnel's log line")


def test_a_draining_worker_lets_websockets_run_until_graceful_timeout(
        engine: str, gateways, ws_upstream: WsUpstream, clients) -> None:
    gw = gateways([_upstream(ws_upstream)], engine=engine, extra={"graceful_timeout": 3})
    ws = clients(_ws_url(gw))
    ws.send("before")
    assert ws.recv(timeout=TIMEOUT) == "before"
    gw.signal(signal.SIGQUIT)
    quit_at = time.monotonic()
    wait_until(lambda: [w["state"] for w in gw.workers()] == ["draining"], TIMEOUT,
               "the worker to drain")
    ws.send("while draining")
    assert ws.recv(timeout=TIMEOUT) == "while draining"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=TIMEOUT)
    closed_after = time.monotonic() - quit_at
    assert 2.5 <= closed_after < 8.0, closed_after
    assert ws.close_code == 1006           # no close frame: the connection was cut
    assert gw.process is not None
    gw.process.wait(TIMEOUT)
    assert _tunnel_logged(gw, "/echo")           # logged when the drain ended the tunnel


def _scrape(gw: Gateway) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = requests.get(gw.url + "/metrics", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _sample(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
            **labels: str) -> float:
    return sum(value for got, value in samples.get(name, [])
               if all(got.get(k) == v for k, v in labels.items()))


def test_status_and_metrics_show_open_websockets(engine: str, gateways,
                                                 ws_upstream: WsUpstream, clients) -> None:
    counted = {"node_selection_algorithm": "least_connection"}   # counts in flight
    gw = gateways([_upstream(ws_upstream, traffic_distribution_policy=counted)],
                  engine=engine, workers=2, gateway={
        "routers": [{"name": "metrics", "upstream": "ws", "filter": "metrics_path"},
                    {"name": "sockets", "upstream": "ws"}],
        "filters": [{"name": "metrics_path", "path": "/metrics"}],
        "interceptors": [{"name": "metrics", "filter": "metrics_path"}]})
    first = clients(_ws_url(gw))
    second = clients(_ws_url(gw))
    for ws in (first, second):
        ws.send("up")
        assert ws.recv(timeout=TIMEOUT) == "up"
    wait_until(lambda: sum(w["websockets"] for w in gw.workers()) == 2, TIMEOUT,
               "status to show two websockets")
    assert gw.status()["upstreams"][0]["active"] == 2     # each tunnel is in flight
    samples = _scrape(gw)
    assert _sample(samples, "dakia_websocket_connections") == 2
    assert _sample(samples, "dakia_websocket_upgrades_total", gateway="test",
                   route="sockets") == 2
    shown = gw.cli("status")
    assert shown.returncode == 0, shown.stderr
    header = next(line for line in shown.stdout.splitlines() if line.startswith("RECORD"))
    assert "CONNS  WS" in header
    first.close()
    wait_until(lambda: sum(w["websockets"] for w in gw.workers()) == 1, TIMEOUT,
               "status to show one websocket")
    wait_until(lambda: _sample(_scrape(gw), "dakia_websocket_connections") == 1, TIMEOUT,
               "the gauge to drop")
    samples = _scrape(gw)
    assert _sample(samples, "dakia_websocket_upgrades_total", route="sockets") == 2
    # The ended tunnel is counted as a request too, under 1xx, once it ended.
    assert _sample(samples, "dakia_requests_total", route="sockets", upstream="ws",
                   status_class="1xx") == 1


def test_a_tls_upstream_node_carries_the_tunnel(engine: str, gateways, clients,
                                                tmp_path) -> None:
    """The relay reads and writes an ``SSLSocket`` on the node's side (``tls: true``) just
    as a plain socket: what a TLS listener will give it on the client's side."""
    pki = make_pki(str(tmp_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    up = WsUpstream(tls=context)
    try:
        gw = gateways([{"name": "wss", "upstream_nodes": [
            {**node(up.port), "tls": True, "ca_file": pki.ca_file}]}], engine=engine)
        ws = clients(_ws_url(gw))
        big = os.urandom(200_000)          # many TLS records each way
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big
        ws.send("over tls")
        assert ws.recv(timeout=TIMEOUT) == "over tls"
        ws.close()
        assert ws.close_code == 1000
        wait_until(lambda: up.closes == [1000], TIMEOUT, "the upstream to see the close")
    finally:
        up.close()


def test_wss_through_a_tls_listener_across_a_graceful_reload(engine: str, gateways,
                                                             ws_upstream: WsUpstream,
                                                             clients, tmp_path) -> None:
    """A client's ``wss://`` to a TLS listener: the tunnel's client side is the
    listener's SSLSocket. Frames both ways, a ping, a reload that rolls the workers (the
    open tunnel goes on on the draining worker, a new one reaches the new worker), and a
    clean close."""
    pki = make_pki(str(tmp_path))
    tls_port = free_port()
    gw = gateways([_upstream(ws_upstream)], engine=engine, extra={"graceful_timeout": 10},
                  gateway={"bind_addresses": [
                      {"host": "127.0.0.1", "port": free_port()},
                      {"host": "127.0.0.1", "port": tls_port, "tls": {"certificates": [
                          {"cert": pki.server_cert, "key": pki.server_key}]}}]})
    trusting = ssl.create_default_context(cafile=pki.ca_file)
    url = f"wss://localhost:{tls_port}/echo"
    ws = clients(url, ssl=trusting)
    big = os.urandom(300_000)                 # many TLS records each way
    ws.send(big)
    assert ws.recv(timeout=TIMEOUT) == big
    ws.send("text over tls")
    assert ws.recv(timeout=TIMEOUT) == "text over tls"
    assert ws.ping().wait(TIMEOUT)
    old_pid = gw.workers()[0]["pid"]
    gw.config["gateways"][0]["bind_addresses"].append({"host": "127.0.0.1",
                                                       "port": free_port()})
    gw.write_config()
    gw.signal(signal.SIGHUP)
    wait_until(lambda: any(w["pid"] == old_pid and w["state"] == "draining"
                           for w in gw.workers()), TIMEOUT, "the old worker to be retired")
    ws.send("while the old worker drains")
    assert ws.recv(timeout=TIMEOUT) == "while the old worker drains"
    fresh = clients(url, ssl=trusting)
    fresh.send(b"\x00binary\xff")
    assert fresh.recv(timeout=TIMEOUT) == b"\x00binary\xff"
    ws.close()
    assert ws.close_code == 1000
    fresh.close()
    assert fresh.close_code == 1000
    wait_until(lambda: sorted(ws_upstream.closes) == [1000, 1000], TIMEOUT,
               "the upstream to see both closes")
    wait_until(lambda: len(_tunnel_logged(gw, "/echo")) == 2, TIMEOUT,
               "both tunnels' log lines")


def test_other_upgrades_are_not_forwarded(engine: str, gateways, upstreams) -> None:
    """h2c (or any Upgrade but websocket) is dropped as hop-by-hop: the request is plain."""
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /h2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        [(response, body)] = read_responses(sock, 1)
    assert response.status_code == 200
    assert up.received[0].header("upgrade") is None
    assert up.received[0].header("connection") is None
    assert up.received[0].header("http2-settings") is None
