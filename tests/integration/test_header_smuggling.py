"""Headers a client must not be able to remove or smuggle, through the running gateway on
both engines: Connection cannot nominate the essentials away, and header names with
underscores are dropped, refused or allowed as ``headers_with_underscores`` says."""
from __future__ import annotations

import re

import pytest
import requests

from .harness import node, raw_exchange, wait_until


def _statuses(answer: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


def _send(gw, head: bytes, body: bytes = b"") -> bytes:
    return raw_exchange(gw.port, head + b"\r\n" + body, half_close=True)


# -- Connection ----------------------------------------------------------------------------
@pytest.mark.parametrize("nominated", [
    b"host", b"Host", b"HOST, close", b"keep-alive, host",
])
def test_connection_cannot_remove_host(engine, upstreams, gateways, nominated: bytes) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer = _send(gw, b"GET /h HTTP/1.1\r\nHost: app.example\r\nConnection: " + nominated
                   + b"\r\n")
    assert _statuses(answer) == [200]
    [got] = up.received
    assert got.header_all("host") == ["app.example"]


def test_connection_cannot_remove_the_framing(engine, upstreams, gateways) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer = _send(gw, b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       b"Content-Type: text/plain\r\nContent-Encoding: identity\r\n"
                       b"Connection: content-length, content-type, content-encoding\r\n",
                   b"hello")
    answer += _send(gw, b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: transfer-encoding\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    assert _statuses(answer) == [200, 200]
    cl, te = up.received
    assert (cl.body, te.body) == (b"hello", b"hello")
    assert cl.header("content-length") == "5"
    assert cl.header("content-type") == "text/plain"
    assert cl.header("content-encoding") == "identity"
    assert te.header("transfer-encoding") == "chunked"


def test_connection_cannot_remove_the_hop_records(engine, upstreams, gateways) -> None:
    """A client naming X-Forwarded-For & co. would erase what a proxy in front added."""
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer = _send(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\n"
                       b"Forwarded: for=203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n"
                       b"Via: 1.1 front\r\n"
                       b"Connection: x-forwarded-for, forwarded, x-real-ip, via\r\n")
    assert _statuses(answer) == [200]
    [got] = up.received
    assert got.header("x-forwarded-for") == "203.0.113.7, 127.0.0.1"
    assert got.header("forwarded") == "for=203.0.113.7"
    assert got.header("x-real-ip") == "203.0.113.7"
    assert got.header("via") == "1.1 front, 1.1 dakia"


def test_connection_still_removes_what_it_may(engine, upstreams, gateways) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    answer = _send(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-Hop: 1\r\nX-Kept: 2\r\n"
                       b"Connection: x-hop\r\n")
    answer += _send(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\nConnection: close\r\n")
    assert _statuses(answer) == [200, 200]
    hop, close = up.received
    assert hop.header("x-hop") is None and hop.header("x-kept") == "2"
    assert close.header("x-kept") == "2" and close.header("connection") is None


def test_connection_cannot_remove_what_an_interceptor_set(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"interceptors": [{"name": "request_rewrite", "config": {
                      "set_headers": {"X-Internal": "gateway"},
                      "add_headers": {"X-Tag": "added"}}}]})
    answer = _send(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-Internal: forged\r\nX-Own: 1\r\n"
                       b"Connection: x-internal, x-tag, x-own\r\n")
    assert _statuses(answer) == [200]
    [got] = up.received
    assert got.header_all("x-internal") == ["gateway"]
    assert got.header_all("x-tag") == ["added"]
    assert got.header("x-own") is None            # the client's own header: its to remove


# -- headers_with_underscores --------------------------------------------------------------
_UNDERSCORED = (b"GET / HTTP/1.1\r\nHost: a\r\nX_User: admin\r\nx-user: alice\r\n"
                b"_: x\r\nX__Y_: z\r\n")


def test_underscored_names_are_dropped_by_default(engine, upstreams, gateways) -> None:
    up = upstreams()
    # A filter on the underscored name never sees it either.
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"filters": [{"name": "x", "header.x_user": {"$exists": True}}],
                           "interceptors": [{"name": "short_circuit", "filter": "x",
                                             "response": {"status": 418}}]})
    answer = _send(gw, _UNDERSCORED)
    assert _statuses(answer) == [200]
    [got] = up.received
    assert [k for k, _ in got.headers if "_" in k] == []
    assert got.header_all("x-user") == ["alice"]


def test_reject_answers_400_and_closes(engine, upstreams, gateways) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  extra={"headers_with_underscores": "reject"})
    answer = _send(gw, _UNDERSCORED + b"\r\nGET / HTTP/1.1\r\nHost: a\r\n")
    assert _statuses(answer) == [400]
    assert up.received == []
    assert _statuses(_send(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-User: b\r\n")) == [200]


def test_allow_and_the_per_gateway_override(engine, upstreams, gateways) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  extra={"headers_with_underscores": "reject"},
                  gateway={"headers_with_underscores": "allow"})
    assert _statuses(_send(gw, _UNDERSCORED)) == [200]
    [got] = up.received
    assert got.header("x_user") == "admin" and got.header("x__y_") == "z"


def test_reload_reaches_the_running_worker(engine, upstreams, gateways) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    [before] = [w["pid"] for w in gw.workers()]
    session = requests.Session()
    assert session.get(gw.url + "/", headers={"X_User": "a"}, timeout=5).status_code == 200
    assert up.received[-1].header("x_user") is None
    gw.config["headers_with_underscores"] = "reject"
    gw.write_config()
    done = gw.cli("reload")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: {w["config_version"] for w in gw.workers()} == {2}, 10,
               "every worker on config v2")
    assert session.get(gw.url + "/", headers={"X_User": "a"}, timeout=5).status_code == 400
    assert [w["pid"] for w in gw.workers()] == [before]
