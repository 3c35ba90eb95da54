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
