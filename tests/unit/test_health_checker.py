"""The health checker's pieces that need no process: status lines, check settings, and the
reconciliation of probes with a config (reset of what is no longer checked)."""
from __future__ import annotations

import os
import socket

import gevent
import pytest

from dakia_prefork.config import validate
from dakia_prefork.health.checker import CheckSpec, Checks, _read_status
from dakia_prefork.shm import Segment
from dakia_prefork.shm.nodestats import NodeStats
from dakia_prefork.shm.segment import segment_name


def status_of(data: bytes) -> int:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        return _read_status(b)
    finally:
        a.close()
        b.close()


def test_status_lines():
    assert status_of(b"HTTP/1.1 204 No Content\r\n\r\n") == 204
    assert status_of(b"HTTP/1.0 503\r\n") == 503
    for bad in (b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 20 x\r\n", b"HTTP/2 200\r\n"):
        with pytest.raises(ValueError):
            status_of(bad)


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


def config(check, ports=(1, 2)):
    """A normalised config (as the checker gets it from the store: defaults filled)."""
    raw = {"gateways": [{"name": "gw", "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
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
