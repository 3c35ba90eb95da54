"""use_file through a running gateway: files, validators, ranges, rewrites, and no way out of
the root whatever the encoding or the symlinks."""
from __future__ import annotations

import hashlib
import os
import socket

import pytest
import requests

from .harness import node, raw_exchange

SECRET = b"TOPSECRET-outside-the-root"


@pytest.fixture
def site(tmp_path):
    """A root with files, directories and links, and secrets next to it."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "bare").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "a.txt").write_text("hello world\n")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (root / "app.js").write_text("let x = 1;")
    (root / "data.wasm").write_bytes(b"\0asm")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    (root / ".hidden").write_text("dotfile")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "www2").mkdir()
    (tmp_path / "www2" / "secret.txt").write_bytes(SECRET)      # shares the root's prefix
    os.symlink("a.txt", root / "link_in")
    os.symlink(tmp_path / "secret.txt", root / "link_out")
    os.symlink("../secret.txt", root / "rel_out")
    os.symlink(tmp_path, root / "dir_out")
    os.symlink("../www2/secret.txt", root / "prefix_out")
    os.mkfifo(root / "fifo")
    return root


def file_gateway(site, upstreams, gateways, engine="h11", **config):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "use_file", "config": {"root": str(site), **config}}]})
    return up, gw


TRAVERSALS = [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt", "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
    "/./../secret.txt", "/.%2e/secret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt",
    "/sub%5c..%5c..%5csecret.txt", "/a.txt%00.html", "/%00", "/%c0%ae%c0%ae/secret.txt",
    "/%252e%252e/secret.txt", "/..;/secret.txt", "//..//secret.txt", "/link_out",
    "/rel_out", "/dir_out/secret.txt", "/dir_out/www2/secret.txt", "/prefix_out", "/fifo",
    "/.hidden", "/sub/.%2e/.%2e/secret.txt", "http://localhost/../secret.txt",
]


def test_traversal_never_leaks_a_file_outside_the_root(engine, site, upstreams, gateways):
    up, gw = file_gateway(site, upstreams, gateways, engine)
    for target in TRAVERSALS:
        response = raw_exchange(gw.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n"
                                         "Connection: close\r\n\r\n".encode())
        status = response.split(b"\r\n", 1)[0]
        assert SECRET not in response, target
        assert status.split()[1] in (b"400", b"404"), (target, status)
    assert up.received == []
    # The gateway is still well, and links that stay inside the root work.
    assert requests.get(gw.url + "/link_in", timeout=5).text == "hello world\n"


def test_files_types_index_and_redirects(engine, site, upstreams, gateways):
    up, gw = file_gateway(site, upstreams, gateways, engine, types={".wasm": "application/x-w"},
                          cache_control="public, max-age=60")
    r = requests.get(gw.url + "/", timeout=5)
    assert (r.status_code, r.text) == (200, "<h1>home</h1>")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["x-content-type-options"] == "nosniff"
    for path, kind in (("/a.txt", "text/plain; charset=utf-8"),
                       ("/app.js", "text/javascript; charset=utf-8"),
                       ("/data.wasm", "application/x-w"),
                       ("/archive.tar.gz", "application/octet-stream"),
                       ("/big.bin", "application/octet-stream")):
        r = requests.get(gw.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == kind, path
    r = requests.get(gw.url + "/sub?x=1", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["location"] == "/sub/?x=1"
    assert requests.get(gw.url + "/sub/", timeout=5).text == "<p>sub</p>"
    assert requests.get(gw.url + "/bare/", timeout=5).status_code == 404      # no listing
    assert requests.get(gw.url + "/missing.txt", timeout=5).status_code == 404
    assert requests.get(gw.url + "/a.txt/", timeout=5).status_code == 404
    r = requests.post(gw.url + "/a.txt", data=b"x", timeout=5)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert up.received == []


def test_large_files_ranges_and_head(engine, site, upstreams, gateways):
    up, gw = file_gateway(site, upstreams, gateways, engine)
    data = (site / "big.bin").read_bytes()
    r = requests.get(gw.url + "/big.bin", timeout=20)
    assert r.status_code == 200 and hashlib.sha256(r.content).digest() == \
        hashlib.sha256(data).digest()
    assert r.headers["content-length"] == str(len(data))
    r = requests.head(gw.url + "/big.bin", timeout=5)
    assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
    assert r.content == b""
    for value, start, end in (("bytes=0-4", 0, 4), ("bytes=100-", 100, len(data) - 1),
                              ("bytes=-3", len(data) - 3, len(data) - 1),
                              ("bytes=1000000-2000000", 1000000, 2000000),
                              ("bytes=10-99999999", 10, len(data) - 1)):
        r = requests.get(gw.url + "/big.bin", headers={"Range": value}, timeout=20)
        assert r.status_code == 206, value
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert r.content == data[start:end + 1], value
    for value in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=abc"):
        r = requests.get(gw.url + "/a.txt", headers={"Range": value}, timeout=5)
        assert (r.status_code, r.text) == (200, "hello world\n"), value
    r = requests.get(gw.url + "/a.txt", headers={"Range": "bytes=12-"}, timeout=5)
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */12"
    r = requests.get(gw.url + "/a.txt", headers={"Range": "bytes=0-4"}, timeout=5)
    assert (r.status_code, r.text) == (206, "hello")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    for if_range, status in ((etag, 206), (modified, 206), ('"other"', 200),
                             ("Thu, 01 Jan 1970 00:00:00 GMT", 200)):
        r = requests.get(gw.url + "/a.txt", headers={"Range": "bytes=0-4", "If-Range": if_range},
                         timeout=5)
        assert r.status_code == status, if_range


def test_conditional_requests(site, upstreams, gateways):
    up, gw = file_gateway(site, upstreams, gateways)
    r = requests.get(gw.url + "/a.txt", timeout=5)
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    for headers, status in (({"If-None-Match": etag}, 304),
                            ({"If-None-Match": f'"x", W/{etag}'}, 304),
                            ({"If-None-Match": "*"}, 304),
                            ({"If-None-Match": '"stale"'}, 200),
                            ({"If-Modified-Since": modified}, 304),
                            ({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
                            ({"If-Modified-Since": "garbage"}, 200),
                            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
                            ({"If-None-Match": '"stale"', "If-Modified-Since": modified}, 200)):
        r = requests.get(gw.url + "/a.txt", headers=headers, timeout=5)
        assert r.status_code == status, headers
        if status == 304:
            assert r.content == b"" and r.headers["etag"] == etag
            assert "content-length" not in r.headers
    # A changed file has a new validator.
    (site / "a.txt").write_text("hello again\n")
    r = requests.get(gw.url + "/a.txt", headers={"If-None-Match": etag}, timeout=5)
    assert (r.status_code, r.text) == (200, "hello again\n") and r.headers["etag"] != etag


def test_path_rewrite_and_filter_scope(site, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "filters": [{"name": "static", "path": {"$starts_with": "/static/"}},
                    {"name": "versioned", "path": {"$matches": "^/v[0-9]+/"}}],
        "interceptors": [
            {"name": "use_file", "filter": "static",
             "config": {"root": str(site), "strip_prefix": "/static"}},
            {"name": "use_file", "filter": "versioned",
             "config": {"root": str(site), "hidden": True,
                        "path_regex": {"pattern": "^/v[0-9]+/(.*)$", "replacement": "/$1"}}},
        ]})
    assert requests.get(gw.url + "/static/a.txt", timeout=5).text == "hello world\n"
    r = requests.get(gw.url + "/static/sub", allow_redirects=False, timeout=5)
    assert r.headers["location"] == "/static/sub/"             # the client's path, not ours
    assert requests.get(gw.url + "/static/sub/", timeout=5).text == "<p>sub</p>"
    assert requests.get(gw.url + "/v2/a.txt", timeout=5).text == "hello world\n"
    assert requests.get(gw.url + "/v2/.hidden", timeout=5).text == "dotfile"
    assert requests.get(gw.url + "/static/.hidden", timeout=5).status_code == 404
    assert requests.get(gw.url + "/a.txt", timeout=5).text == "app"      # not a file route
    assert [r.target for r in up.received] == ["/a.txt"]


def test_files_on_a_kept_alive_connection(site, upstreams, gateways):
    """Several file answers, one of them large, on one connection: framing stays exact."""
    up, gw = file_gateway(site, upstreams, gateways)
    size = (site / "big.bin").stat().st_size
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n"
                  b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 4
    assert f"content-length: {size}".encode() in received
    assert received.endswith(b"<h1>home</h1>")


def test_check_reports_bad_use_file_configs(site, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False, gateway={
        "interceptors": [{"name": "use_file", "config": {
            "root": str(site / "a.txt"), "index": "../x",
            "path_regex": {"pattern": "(", "replacement": "/"}}}]})
    gw.write_config()
    done = gw.cli("check")
    assert done.returncode == 1
    for line in ("gateways[0].interceptors[0].config.root: ",
                 "gateways[0].interceptors[0].config.index: a file name, not a path",
                 "gateways[0].interceptors[0].config.path_regex.pattern: does not compile"):
        assert line in done.stderr, (line, done.stderr)


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_large_file_is_streamed_not_held_whole(engine, site, upstreams, gateways):
    """A 48 MiB file goes out in chunks: the worker's peak memory barely moves."""
    size = 48 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with open(site / "huge.bin", "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
            digest.update(block)
    up, gw = file_gateway(site, upstreams, gateways, engine)
    [worker] = gw.workers()
    before = _peak_rss_kib(worker["pid"])
    received = hashlib.sha256()
    with requests.get(gw.url + "/huge.bin", stream=True, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(size)
        for piece in r.iter_content(1 << 20):
            received.update(piece)
    assert received.digest() == digest.digest()
    growth_mib = (_peak_rss_kib(worker["pid"]) - before) / 1024
    assert growth_mib < 16, f"worker peak RSS grew by {growth_mib:.1f} MiB for a 48 MiB file"
