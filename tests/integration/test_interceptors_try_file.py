"""try_file through a running gateway: a miss is fetched once, stored whole, then served from
disk; what should not be stored is not."""
from __future__ import annotations

import os
import threading
import time

import requests

from .harness import free_port, node

BIG = os.urandom(200_000)


def handler(request, sock):
    path = request.target.partition("?")[0]
    if path == "/slow.txt":
        time.sleep(0.6)
    if path == "/stall.txt":
        time.sleep(5)
    if path == "/missing":
        body = b"no such thing"
        return (b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nx-origin: app\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body))
    if path == "/garbage.txt":
        return b"garbage\r\n\r\n"
    if path == "/chunked.txt":
        return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    if path in ("/big.bin", "/big-chunked.bin"):
        if path == "/big.bin":
            return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(BIG), BIG)
        return (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (len(BIG), BIG))
    body = f"content of {path}".encode()
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body))


def cache_gateway(tmp_path, upstreams, gateways, engine="h11", **config):
    up = upstreams(handler, name="app")
    cache = tmp_path / "cache"
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "try_file", "config": {
            "root": str(cache), "max_size": 100_000, "timeout": 2, **config}}]})
    return up, gw, cache


def stored_files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_a_miss_is_fetched_once_then_served_from_disk(engine, tmp_path, upstreams, gateways):
    up, gw, cache = cache_gateway(tmp_path, upstreams, gateways, engine)
    for _ in range(3):
        r = requests.get(gw.url + "/docs/a.txt?v=1", timeout=10,
                         headers={"If-None-Match": '"x"', "Accept-Encoding": "gzip"})
        assert (r.status_code, r.text) == (200, "content of /docs/a.txt")
        assert r.headers["content-type"] == "text/plain; charset=utf-8" and "etag" in r.headers
    assert [x.target for x in up.received] == ["/docs/a.txt?v=1"]      # one fetch only
    fetch = up.received[0]
    assert fetch.method == "GET" and fetch.header("if-none-match") is None
    assert fetch.header("accept-encoding") == "identity"
    assert fetch.header("x-forwarded-for") == "127.0.0.1" and fetch.header("via") == "1.1 dakia"
    assert (cache / "docs" / "a.txt").read_bytes() == b"content of /docs/a.txt"
    # Conditional requests and ranges work on the stored file like any other.
    etag = r.headers["etag"]
    assert requests.get(gw.url + "/docs/a.txt", headers={"If-None-Match": etag},
                        timeout=5).status_code == 304
    r = requests.get(gw.url + "/docs/a.txt", headers={"Range": "bytes=0-6"}, timeout=5)
    assert (r.status_code, r.text) == (206, "content")
    # A chunked 200, a directory path (stored as its index) and a HEAD miss.
    assert requests.get(gw.url + "/chunked.txt", timeout=5).text == "hello world"
    assert requests.get(gw.url + "/", timeout=5).text == "content of /"
    r = requests.head(gw.url + "/h.txt", timeout=5)
    assert r.status_code == 200 and r.headers["content-length"] == str(len("content of /h.txt"))
    assert up.received[-1].method == "GET"                   # fetched whole to be stored
    assert stored_files(cache) == ["chunked.txt", "docs/a.txt", "h.txt", "index.html"]
    count = len(up.received)
    for path in ("/chunked.txt", "/", "/h.txt"):
        requests.get(gw.url + path, timeout=5)
    assert len(up.received) == count


def test_what_is_not_stored(tmp_path, upstreams, gateways):
    up, gw, cache = cache_gateway(tmp_path, upstreams, gateways)
    for _ in range(2):                          # a 404 is relayed as it is, and not stored
        r = requests.get(gw.url + "/missing", timeout=5)
        assert (r.status_code, r.text, r.headers["x-origin"]) == (404, "no such thing", "app")
    assert len(up.received) == 2
    # Over max_size: passed through by the proxy (which asks again), never stored.
    for path in ("/big.bin", "/big-chunked.bin"):
        r = requests.get(gw.url + path, timeout=10)
        assert r.status_code == 200 and r.content == BIG
    assert [x.target for x in up.received[2:]] == ["/big.bin"] * 2 + ["/big-chunked.bin"] * 2
    # Other methods are not the cache's business.
    assert requests.post(gw.url + "/p.txt", data=b"x", timeout=5).text == "content of /p.txt"
    # Traversal is refused before anything is fetched or written.
    r = requests.get(gw.url + "/%2e%2e/escape.txt", timeout=5)
    assert r.status_code == 400
    assert stored_files(cache) == []
    assert not (tmp_path / "escape.txt").exists()


def test_concurrent_misses_fetch_once(tmp_path, upstreams, gateways):
    up, gw, cache = cache_gateway(tmp_path, upstreams, gateways)
    results = []

    def get() -> None:
        results.append(requests.get(gw.url + "/slow.txt", timeout=10).text)

    threads = [threading.Thread(target=get) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == ["content of /slow.txt"] * 5
    assert len(up.received) == 1


def test_unreachable_and_slow_upstreams(tmp_path, upstreams, gateways):
    up, gw, cache = cache_gateway(tmp_path, upstreams, gateways, timeout=0.5)
    started = time.monotonic()
    r = requests.get(gw.url + "/stall.txt", timeout=10)
    assert r.status_code == 504 and time.monotonic() - started < 3
    assert stored_files(cache) == []
    nobody = gateways([{"name": "app", "upstream_nodes": [node(free_port())]}], gateway={
        "interceptors": [{"name": "try_file", "config": {"root": str(cache)}}]})
    assert requests.get(nobody.url + "/gone.txt", timeout=10).status_code == 502
    assert stored_files(cache) == []


def test_a_response_the_engine_refuses_is_a_502_from_the_fetch(engine, tmp_path, upstreams,
                                                               gateways):
    up, gw, cache = cache_gateway(tmp_path, upstreams, gateways, engine)
    r = requests.get(gw.url + "/garbage.txt", timeout=5)
    assert (r.status_code, r.text) == (502, "502 Bad Gateway\n")     # try_file's, not the proxy's
    assert [x.target for x in up.received] == ["/garbage.txt"] and stored_files(cache) == []
    assert "illegal status line" in gw.log_text()
