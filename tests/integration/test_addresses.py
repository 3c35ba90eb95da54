"""Listeners and upstream nodes beyond IPv4 literals: unix sockets, host names."""
from __future__ import annotations

import socket

from .harness import read_responses


def test_unix_listener_and_unix_upstream(engine, upstreams, gateways, tmp_path):
    up = upstreams(name="via-unix", unix_path=str(tmp_path / "up.sock"))
    listen_path = str(tmp_path / "gw.sock")
    gw = gateways([{"name": "app", "upstream_nodes": [{"address": {"unix": up.sock.getsockname()}}]}],
                  engine=engine, workers=2,
                  gateway={"bind_addresses": [{"unix": listen_path}]})
    for _ in range(4):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(listen_path)
            s.sendall(b"GET /u HTTP/1.1\r\nhost: anything\r\n\r\n")
            [(response, body)] = read_responses(s, 1)
        assert response.status_code == 200 and body == b"via-unix"
    seen = up.received[-1]
    assert seen.target == "/u"
    assert seen.header("x-forwarded-for") is None      # no client IP on a unix socket
    gw.stop()
    assert not (tmp_path / "gw.sock").exists()


def test_upstream_node_by_host_name(engine, upstreams, gateways):
    up = upstreams(name="named")
    gw = gateways([{"name": "app", "upstream_nodes": [
        {"address": {"host": "localhost", "port": up.port}}]}], engine=engine)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        [(response, body)] = read_responses(s, 1)
    assert response.status_code == 200 and body == b"named"


def test_ipv6_listener_and_ipv6_upstream_node(engine, upstreams, gateways):
    from .harness import free_port
    up = upstreams(name="v6", host="::1")
    port = free_port("::1")
    gateways([{"name": "app", "upstream_nodes": [{"address": {"host": "::1", "port": up.port}}]}],
             engine=engine, gateway={"bind_addresses": [{"host": "::1", "port": port}]})
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"GET /six HTTP/1.1\r\nhost: x\r\n\r\n")
        [(response, body)] = read_responses(s, 1)
    assert response.status_code == 200 and body == b"v6"
    assert up.received[-1].header("x-forwarded-for") == "::1"
    # An HTTP/1.0 request without Host gets the node's bracketed address as Host upstream.
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        s.recv(65536)
    assert up.received[-1].header("host") == f"[::1]:{up.port}"


def test_host_name_node_with_a_resolve_ttl_and_several_names(engine, upstreams, gateways):
    a, b = upstreams(name="a"), upstreams(name="b")
    gw = gateways([{"name": "app", "resolve_ttl": 0.2, "upstream_nodes": [
        {"address": {"host": "localhost", "port": a.port}},
        {"address": {"host": "LOCALHOST.", "port": b.port}}]}], engine=engine)
    import time
    seen = set()
    for _ in range(6):                   # past the TTL: re-resolved in the background
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            [(response, body)] = read_responses(s, 1)
        assert response.status_code == 200
        seen.add(body)
        time.sleep(0.1)
    assert seen == {b"a", b"b"}
