"""Request targets and Host through the running gateway, on both engines (RFC 9112 3.2,
RFC 9110 7.2): an absolute-form target's authority is the host, every 400 closes the
connection, legal reg-names are served, CONNECT and OPTIONS * get their answers."""
from __future__ import annotations

import re

import pytest

from .harness import node, raw_exchange


def _statuses(answer: bytes) -> list[int]:
    """The status of every response in ``answer`` (bodies here never hold a status line)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


@pytest.fixture
def vhosts(engine, upstreams, gateways):
    """served.example → up "a" (b.served.example → up "b", by a host filter); nothing else
    is served."""
    a = upstreams(name="a")
    b = upstreams(name="b")
    gw = gateways(
        [{"name": "a", "default": True, "upstream_nodes": [node(a.port)]},
         {"name": "b", "upstream_nodes": [node(b.port)]}],
        engine=engine,
        gateway={"downstreams": [{"host": "served.example"}, {"host": "*.served.example"}],
                 "filters": [{"name": "b_host", "host": "b.served.example"}],
                 "routers": [{"upstream": "b", "filter": "b_host"}, {"upstream": "default"}]})
    return gw, a, b


def test_absolute_form_authority_decides_the_virtual_host(vhosts) -> None:
    gw, a, b = vhosts
    # A target naming an unserved host is not proxied under the served Host header.
    answer = raw_exchange(gw.port, b"GET http://unserved.example/x HTTP/1.1\r\n"
                                   b"Host: served.example\r\nConnection: close\r\n\r\n")
    assert _statuses(answer) == [404]
    assert a.received == [] and b.received == []
    # The authority, not Host, picks the route; the upstream gets origin-form and it.
    answer = raw_exchange(gw.port, b"GET http://b.served.example:81/p/q?x=1&y=%2F HTTP/1.1\r\n"
                                   b"Host: served.example\r\nConnection: close\r\n\r\n")
    assert _statuses(answer) == [200]
    [got] = b.received
    assert got.target == "/p/q?x=1&y=%2F"
    assert got.header_all("host") == ["b.served.example:81"]
    assert got.header("x-forwarded-host") == "b.served.example:81"
    assert a.received == []


def test_absolute_form_without_a_path_and_with_https(vhosts) -> None:
    gw, a, _ = vhosts
    answer = raw_exchange(gw.port, b"GET HTTPS://SERVED.example?z HTTP/1.1\r\n"
                                   b"Host: nothing.example\r\nConnection: close\r\n\r\n")
    assert _statuses(answer) == [200]
    assert [(r.target, r.header("host")) for r in a.received] == [("/?z", "SERVED.example")]


def test_http10_absolute_form_without_host(vhosts) -> None:
    gw, a, _ = vhosts
    answer = raw_exchange(gw.port, b"GET http://served.example/ten HTTP/1.0\r\n\r\n")
    assert _statuses(answer) == [200]
    assert [(r.target, r.header("host")) for r in a.received] == [("/ten",
                                                                   "served.example")]


_NEXT = b"GET /next HTTP/1.1\r\nHost: served.example\r\n\r\n"


@pytest.mark.parametrize("first", [
    # An invalid Host (routing/hosts.py).
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: served.example/x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: user@served.example\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: served.example:99999\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: " + b"x" * 64 + b".served.example\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a..served.example\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: %zz.served.example\r\n\r\n",
    # An invalid Host with a body the gateway could have skipped.
    b"POST / HTTP/1.1\r\nHost: a b\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a b\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    # Absolute-form whose authority is invalid or carries userinfo.
    b"GET http://served.example:99999/ HTTP/1.1\r\nHost: served.example\r\n\r\n",
    b"GET http://[served.example]/ HTTP/1.1\r\nHost: served.example\r\n\r\n",
    b"GET http://x@served.example/ HTTP/1.1\r\nHost: served.example\r\n\r\n",
    # A fragment: never part of a request target (RFC 9112 3.2); an upstream might cut
    # the path there, or not.
    b"GET /a#b HTTP/1.1\r\nHost: served.example\r\n\r\n",
    b"GET /a?q=1#b HTTP/1.1\r\nHost: served.example\r\n\r\n",
    # A path above the root (the path normaliser).
    b"GET /../x HTTP/1.1\r\nHost: served.example\r\n\r\n",
    b"GET /a/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: served.example\r\n\r\n",
    # The engines' own refusals.
    b"GET / HTTP/1.1\r\nHost: served.example\r\nHost: served.example\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: served.example\r\n\r\n",
])
def test_every_400_closes_the_connection(vhosts, first: bytes) -> None:
    gw, a, b = vhosts
    answer = raw_exchange(gw.port, first + _NEXT, half_close=True)
    assert _statuses(answer) == [400], answer[:300]
    assert b"connection: close" in answer.lower()
    assert a.received == [] and b.received == []


@pytest.mark.parametrize(("host", "status"), [
    (b"served.example", 200),
    (b"served.example:", 200),                    # an empty port is the default port
    (b"SERVED.Example.", 200),
    (b"Serv%65d.example", 200),                   # an escaped unreserved character
    (b"a!$&'()*+,;=~_-.served.example", 200),     # sub-delims: a legal reg-name
    (b"x" * 63 + b".served.example", 200),        # the longest label
    (b"nope.example", 404),
])
def test_legal_reg_names_are_served(vhosts, host: bytes, status: int) -> None:
    gw, a, _ = vhosts
    answer = raw_exchange(gw.port, b"GET /r HTTP/1.1\r\nHost: " + host + b"\r\n\r\n" + _NEXT,
                          half_close=True)
    # Not a 400, and the connection stays usable for the next request.
    assert _statuses(answer) == [status, 200]


def test_a_name_longer_than_253_octets_is_400(vhosts) -> None:
    gw, _, _ = vhosts
    long_name = b".".join([b"a" * 60] * 4) + b".served.example"
    assert len(long_name) > 253
    answer = raw_exchange(gw.port, b"GET / HTTP/1.1\r\nHost: " + long_name + b"\r\n\r\n" + _NEXT,
                          half_close=True)
    assert _statuses(answer) == [400]


def test_connect_is_405_and_closes(vhosts) -> None:
    gw, a, b = vhosts
    answer = raw_exchange(gw.port, b"CONNECT served.example:443 HTTP/1.1\r\n"
                                   b"Host: served.example:443\r\n\r\n" + _NEXT,
                          half_close=True)
    assert _statuses(answer) == [405]
    assert b"\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n" in answer
    assert b"connection: close" in answer.lower()
    assert a.received == [] and b.received == []


@pytest.mark.parametrize("request_line", [
    b"OPTIONS * HTTP/1.1", b"OPTIONS http://served.example HTTP/1.1",
])
def test_options_asterisk_is_answered_by_the_gateway(vhosts, request_line: bytes) -> None:
    gw, a, b = vhosts
    answer = raw_exchange(gw.port, request_line + b"\r\nHost: served.example\r\n\r\n" + _NEXT,
                          half_close=True)
    assert _statuses(answer) == [200, 200]
    # Only the second request went upstream.
    assert [r.target for r in a.received] == ["/next"] and b.received == []


@pytest.mark.parametrize("first", [
    # A body that breaks its chunked framing (the connection loop's 400).
    b"POST / HTTP/1.1\r\nHost: served.example\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    # An interceptor's own 400.
    b"GET /refused HTTP/1.1\r\nHost: served.example\r\n\r\n",
    b"POST /refused HTTP/1.1\r\nHost: served.example\r\nContent-Length: 2\r\n\r\nab",
])
def test_a_400_from_the_body_or_an_interceptor_closes_too(engine, upstreams, gateways,
                                                          first: bytes) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"filters": [{"name": "refused", "path": "/refused"}],
                           "interceptors": [{"name": "short_circuit", "filter": "refused",
                                             "response": {"status": 400, "body": "no"}}]})
    answer = raw_exchange(gw.port, first + _NEXT, half_close=True)
    assert _statuses(answer) == [400], answer[:300]
    assert b"connection: close" in answer.lower()
    assert [r.target for r in up.received if r.target == "/next"] == []
