"""The HTTP path end to end: real master and workers, real upstreams, real clients.

Every test here runs under both parser engines (the ``engine`` fixture).
"""
from __future__ import annotations

import hashlib
import os
import socket
import time

import requests

from .harness import node, raw_exchange, read_responses, wait_until


def _raw_response(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_get_proxied_with_forwarding_headers(engine, upstreams, gateways):
    up = upstreams(name="alpha")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    r = requests.get(gw.url + "/hello?x=1", headers={"X-Forwarded-For": "10.1.1.1",
                                                     "Via": "1.0 edge"}, timeout=5)
    assert r.status_code == 200
    assert r.text == "alpha"
    assert "dakia" in r.headers["via"]
    seen = up.received[-1]
    assert seen.method == "GET" and seen.target == "/hello?x=1"
    assert seen.header("x-forwarded-for") == "10.1.1.1, 127.0.0.1"
    assert seen.header("x-forwarded-proto") == "http"
    assert seen.header("x-forwarded-host") == f"127.0.0.1:{gw.port}"
    assert seen.header("via") == "1.0 edge, 1.1 dakia"
    assert seen.header("host") == f"127.0.0.1:{gw.port}"


def test_hop_by_hop_headers_removed_both_ways(engine, upstreams, gateways):
    def handler(request, sock):
        return (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=5\r\n"
                b"x-private: secret\r\nconnection: x-private\r\nx-kept: yes\r\n\r\nok")
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, x-drop\r\n"
                  b"x-drop: 1\r\nkeep-alive: 300\r\nte: trailers\r\nupgrade: foo\r\n"
                  b"proxy-connection: keep-alive\r\nx-stay: 1\r\n\r\n")
        [(response, body)] = read_responses(s, 1)
    names = {k.decode().lower() for k, _ in response.headers}
    assert body == b"ok"
    assert "x-kept" in names and "x-private" not in names and "keep-alive" not in names
    seen = up.received[-1]
    sent = {k for k, _ in seen.headers}
    assert "x-stay" in sent
    for hop in ("x-drop", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert hop not in sent, hop
    assert seen.header("connection") in (None, "keep-alive")


def test_keep_alive_both_sides(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(gw.url + "/", timeout=5).status_code == 200
    assert len(up.received) == 20
    assert up.connections == 1          # the worker reused one pooled upstream connection


def test_pipelined_requests_answered_in_order(engine, upstreams, gateways):
    def handler(request, sock):
        if request.target == "/slow":
            time.sleep(0.2)
        body = request.target.encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    targets = ["/slow", "/a", "/b", "/c"]
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % t.encode() for t in targets))
        responses = read_responses(s, len(targets))
    assert [body.decode() for _, body in responses] == targets


def test_large_chunked_upload_streams_byte_exact(engine, upstreams, gateways):
    def handler(request, sock):
        body = f"{request.body_length} {request.body_sha256}".encode()
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    worker_pid = gw.workers()[0]["pid"]
    peak_before = _peak_rss_kib(worker_pid)
    digest = hashlib.sha256()
    total = 24 * 1024 * 1024
    block = os.urandom(256 * 1024)

    def chunks():
        sent = 0
        while sent < total:
            digest.update(block)
            sent += len(block)
            yield block
    r = requests.post(gw.url + "/upload", data=chunks(), timeout=60)
    assert r.status_code == 200
    assert r.text == f"{total} {digest.hexdigest()}"
    assert up.received[-1].header("transfer-encoding") == "chunked"
    growth_mib = (_peak_rss_kib(worker_pid) - peak_before) / 1024
    assert growth_mib < 12, f"worker peak RSS grew by {growth_mib:.1f} MiB for a 24 MiB body"


def test_large_response_streams_byte_exact(engine, upstreams, gateways):
    payload = os.urandom(8 * 1024 * 1024)

    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
        view = memoryview(payload)
        for i in range(0, len(payload), 1 << 20):
            sock.sendall(view[i:i + (1 << 20)])
        return b""
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    r = requests.get(gw.url + "/big", timeout=60)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(payload).digest()


def test_content_length_upload(engine, upstreams, gateways):
    def handler(request, sock):
        return b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n%s" % (
            len(request.body), request.body)
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    r = requests.put(gw.url + "/x", data=b"payload-bytes", timeout=5)
    assert r.status_code == 201 and r.content == b"payload-bytes"
    assert up.received[-1].header("content-length") == "13"


def test_response_framings(engine, upstreams, gateways):
    def handler(request, sock):
        if request.target == "/chunked":
            return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n")
        if request.target == "/close":
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil-eof body")
            return None
        if request.target == "/http10":
            sock.sendall(b"HTTP/1.0 200 OK\r\n\r\nold style")
            return None
        return b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nlength"
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /chunked HTTP/1.1\r\nhost: x\r\n\r\nGET /close HTTP/1.1\r\nhost: x\r\n\r\n"
                  b"GET /http10 HTTP/1.1\r\nhost: x\r\n\r\nGET /len HTTP/1.1\r\nhost: x\r\n\r\n")
        responses = read_responses(s, 4)
    assert [b for _, b in responses] == [b"hello world", b"until-eof body", b"old style",
                                         b"length"]
    # close-delimited upstream bodies reach an HTTP/1.1 client chunked, keeping it alive
    assert (b"transfer-encoding", b"chunked") in responses[1][0].headers
    # and an HTTP/1.0 client gets them close-delimited
    data = raw_exchange(gw.port, b"GET /close HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nuntil-eof body")
    assert b"connection: close" in data.lower()


def test_head_204_304_have_no_body(engine, upstreams, gateways):
    def handler(request, sock):
        if request.target == "/204":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if request.target == "/304":
            return b"HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n" + (
            b"" if request.method == "HEAD" else b"x" * 1234)
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"HEAD /h HTTP/1.1\r\nhost: x\r\n\r\nGET /204 HTTP/1.1\r\nhost: x\r\n\r\n"
                  b"GET /304 HTTP/1.1\r\nhost: x\r\n\r\nGET /after HTTP/1.1\r\nhost: x\r\n\r\n")
        responses = read_responses(s, 4, methods=[b"HEAD", b"GET", b"GET", b"GET"])
    statuses = [r.status_code for r, _ in responses]
    assert statuses == [200, 204, 304, 200]
    assert (b"content-length", b"1234") in responses[0][0].headers
    assert responses[0][1] == b"" and responses[1][1] == b"" and responses[2][1] == b""
    assert responses[3][1] == b"x" * 1234


def test_expect_100_continue_and_early_hints(engine, upstreams, gateways):
    def handler(request, sock):
        return (b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n"
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                % (len(request.body), request.body))
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
                  b"expect: 100-continue\r\n\r\n")
        first = _raw_response(s)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n")
        s.sendall(b"data")
        rest = b""
        while not rest.endswith(b"data"):
            chunk = s.recv(65536)
            assert chunk, rest
            rest += chunk
    assert b"HTTP/1.1 103 Early Hints\r\n" in rest and b"HTTP/1.1 200 OK\r\n" in rest
    assert up.received[-1].header("expect") is None


def test_no_route_and_unknown_host_are_404(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"downstreams": [{"host": "example.com"}],
                           "routers": [{"upstream": "app", "filter": "api"}],
                           "filters": [{"name": "api", "path": {"$starts_with": "/api"}}]})
    assert requests.get(gw.url + "/api/x", headers={"Host": "example.com"},
                        timeout=5).status_code == 200
    r = requests.get(gw.url + "/other", headers={"Host": "example.com"}, timeout=5)
    assert r.status_code == 404 and "no route" in r.text
    r = requests.get(gw.url + "/api/x", headers={"Host": "nope.org"}, timeout=5)
    assert r.status_code == 404 and "no such host" in r.text


def test_upstream_refused_is_502(engine, upstreams, gateways):
    from .harness import free_port
    gw = gateways([{"name": "app", "upstream_nodes": [node(free_port())]}], engine=engine)
    r = requests.get(gw.url + "/", timeout=5)
    assert r.status_code == 502
    assert "upstream" in r.text


def test_upstream_read_timeout_is_504(engine, upstreams, gateways):
    def handler(request, sock):
        time.sleep(3)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)],
                    "timeouts": {"read": 0.5}}], engine=engine)
    started = time.monotonic()
    r = requests.get(gw.url + "/", timeout=10)
    assert r.status_code == 504
    assert time.monotonic() - started < 2.5


def test_upstream_broken_response_is_502(engine, upstreams, gateways):
    def handler(request, sock):
        if request.target == "/garbage":
            return b"NOT HTTP AT ALL\r\n\r\n"
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        return None                      # closes: the body is truncated
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    assert requests.get(gw.url + "/garbage", timeout=5).status_code == 502
    # a truncated body after the head went out can only be signalled by closing
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /trunc HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"short")


def test_malformed_requests_get_400_and_never_kill_the_worker(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    pid = gw.workers()[0]["pid"]
    bad = [
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [::1\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ]
    for payload in bad:
        data = raw_exchange(gw.port, payload)
        assert data.startswith(b"HTTP/1.1 400 "), (payload, data)
    huge = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70000 + b"\r\n\r\n"
    assert raw_exchange(gw.port, huge).startswith(b"HTTP/1.1 431 ")
    assert gw.workers()[0]["pid"] == pid
    assert requests.get(gw.url + "/", timeout=5).status_code == 200


def test_request_body_limit_is_413(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  extra={"limits": {"max_body_bytes": 1000}})
    r = requests.post(gw.url + "/", data=b"x" * 5000, timeout=5)
    assert r.status_code == 413
    assert requests.post(gw.url + "/", data=b"x" * 500, timeout=5).status_code == 200


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_round_robin_is_global_across_workers(engine, upstreams, gateways):
    a, b = upstreams(name="a"), upstreams(name="b")
    gw = gateways([{"name": "app", "upstream_nodes": [node(a.port), node(b.port)]}],
                  engine=engine, workers=2)
    seen_workers = set()
    counts = {"a": 0, "b": 0}
    for _ in range(100):
        # a new connection each time: the kernel spreads them over both workers' sockets
        r = requests.get(gw.url + "/", headers={"Connection": "close"}, timeout=5)
        counts[r.text] += 1
    for w in gw.workers():
        if w["requests"]:
            seen_workers.add(w["pid"])
    assert counts == {"a": 50, "b": 50}
    wait_until(lambda: len([w for w in gw.workers() if w["requests"]]) == 2, 5,
               "both workers to report requests")


def test_pooled_connection_closed_by_upstream_is_replaced(engine, upstreams, gateways):
    """An upstream that closes idle keep-alive connections (without saying so) never makes a
    body-less request fail: the gateway replays it once on a fresh connection."""
    import threading

    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        # an idle close behind the pool's back (shutdown: close() would not wake our recv)
        threading.Timer(0.05, sock.shutdown, (socket.SHUT_RDWR,)).start()
        return b""
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    for _ in range(5):
        assert requests.get(gw.url + "/", timeout=5).status_code == 200
        time.sleep(0.2)       # let the upstream's close land while the connection is idle
    assert up.connections >= 5


def test_upstream_failure_after_the_body_went_out_with_interceptors(engine, upstreams,
                                                                    gateways):
    """A POST whose body was sent, then a broken response: 502, through the interceptors'
    response phase (the Server header), and the connection stays usable."""
    def handler(request, sock):
        return b"NOT HTTP\r\n\r\n"
    up = upstreams(handler)
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)], "retries": 0}],
                  engine=engine, gateway={"interceptors": [{"name": "server_version"}]})
    with requests.Session() as session:
        for _ in range(2):
            r = session.post(gw.url + "/form", data=b"x" * 1000, timeout=5)
            assert r.status_code == 502
            assert r.headers["server"].startswith("dakia-prefork/")
    assert up.received[-1].body_length == 1000
