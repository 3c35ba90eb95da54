"""The health checker's pieces that need no gateway: status lines, check settings, and the
reconciliation of probes with a config (reset of what is no longer checked)."""
from __future__ import annotations

import os
import socket
import threading
from typing import Any

import gevent
import pytest

from dakia_prefork.config import validate
from dakia_prefork.health.checker import CheckSpec, Checks, final_status
from dakia_prefork.http.engines import Engine, select_engine
from dakia_prefork.http.errors import UpstreamFailed
from dakia_prefork.http.upstream import Node
from dakia_prefork.shm import Segment
from dakia_prefork.shm.nodestats import NodeStats
from dakia_prefork.shm.segment import segment_name

SPEC = CheckSpec("/", 60.0, 2.0, 1, 1, frozenset({200}))


@pytest.fixture(params=["h11", "httptools"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return select_engine(request.param)


def status_of(data: bytes, engine: Engine) -> int:
    """The status a probe reads when a node answers ``data`` and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(65536)                  # until the probe closes

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        return final_status(Node(("tcp", "127.0.0.1", listener.getsockname()[1])), SPEC,
                            None, engine)
    finally:
        thread.join(5)
        listener.close()


def test_status_lines(engine: Engine) -> None:
    assert status_of(b"HTTP/1.1 204 No Content\r\n\r\n", engine) == 204
    assert status_of(b"HTTP/1.0 503\r\n\r\n", engine) == 503
    assert status_of(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 OK\r\n\r\n", engine) == 202
    # The whole head is read, strictly: a status line alone (then EOF) is not a response.
    for bad in (b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 20 x\r\n", b"HTTP/2 200\r\n",
                b"HTTP/1.0 503\r\n", b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"):
        with pytest.raises(UpstreamFailed) as failed:
            status_of(bad, engine)
        assert failed.value.status == 502


def test_check_spec_from_a_normalised_config():
    spec = CheckSpec.from_config({"path": "/hc", "interval": 2, "timeout": 1,
                                  "healthy_threshold": 1, "unhealthy_threshold": 4,
                                  "expected_statuses": [200, 204]})
    assert spec == CheckSpec("/hc", 2.0, 1.0, 1, 4, frozenset({200, 204}))


@pytest.fixture
def stats(tmp_path):
    seg = Segment(segment_name(str(tmp_path), os.getpid(), "nodes"), NodeStats.size_for(16, 4),
                  create=True)
    NodeStats.format(seg, 4)
    yield NodeStats(seg)
    seg.unlink()
    seg.close()


def config(check: dict[str, Any] | None, ports: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """A normalised config (as the checker gets it from the store: defaults filled)."""
    raw = {"http_parser": "h11",
           "gateways": [{"name": "gw", "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
                         "upstreams": [{
        "name": "app", "default": True, "health_check": check,
        "upstream_nodes": [{"address": {"host": "127.0.0.1", "port": p}} for p in ports]}]}]}
    return validate(raw, base_dir="/")[0]


def test_probes_follow_the_config_and_forget_what_is_no_longer_checked(stats):
    checks = Checks(stats)
    check = {"path": "/", "interval": 60, "timeout": 1}
    assert checks.apply(config(check)) == 2
    key = "gw/app/127.0.0.1:2"
    index = stats.index_for(key)
    stats.record_check(index, False, 1, 1, 0.0)
    assert stats.snapshot(index, 0.0).health == "unhealthy"
    # Same check, one node more: the probes of the others carry on.
    greenlet = checks.targets[key].greenlet
    assert checks.apply(config(check, (1, 2, 3))) == 3
    assert checks.targets[key].greenlet is greenlet
    # Node 2 leaves: its verdict goes back to unknown.
    assert checks.apply(config(check, (1, 3))) == 2
    assert stats.snapshot(index, 0.0).health == "unknown"
    assert checks.apply(config(None)) == 0
    checks.stop()
    gevent.sleep(0)


def test_probes_read_with_the_engine_the_config_names(stats: NodeStats) -> None:
    checks = Checks(stats)
    check = {"path": "/", "interval": 60, "timeout": 1}
    checks.apply({**config(check), "http_parser": "httptools"})
    greenlets = {key: t.greenlet for key, t in checks.targets.items()}
    assert {t.engine.name for t in checks.targets.values()} == {"httptools"}
    # Another engine is the same probe, reading with the new one from its next check.
    checks.apply(config(check))
    assert {t.engine.name for t in checks.targets.values()} == {"h11"}
    assert {key: t.greenlet for key, t in checks.targets.items()} == greenlets
    checks.stop()
    gevent.sleep(0)
