"""The running master maps no gevent and no httptools, before and after a reload onto a config
that uses every built-in interceptor (the master builds and checks every chain).

h11 is pure Python and maps nothing: tests/unit/test_import_boundaries.py watches
sys.modules for it, for http/ and for the rest of what the master must not import.
"""
from __future__ import annotations

import os

import requests

from ..every_interceptor import FILTER, admin_section, interceptor_entries
from .harness import node, wait_until

# gevent's compiled modules, greenlet (its hub's stacks) and httptools' parser: a process
# that maps one of them has loaded the worker's side.
SERVING_PACKAGES = ("gevent", "greenlet", "httptools")


def serving_objects(pid: int) -> list[str]:
    """The shared objects of SERVING_PACKAGES that process ``pid`` has mapped."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) < 6 or not fields[5].startswith("/"):
                continue
            path = fields[5].strip()
            parts = path.split(os.sep)
            if ".so" in parts[-1] and any(part.startswith(SERVING_PACKAGES) for part in parts):
                found.add(path)
    return sorted(found)


def test_the_master_never_maps_gevent_or_httptools(tmp_path, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine="httptools")
    assert serving_objects(gw.master_pid) == []
    gw.config["gateways"][0]["filters"] = [FILTER]
    gw.config["gateways"][0]["interceptors"] = interceptor_entries(str(tmp_path))
    gw.config["admin"] = admin_section()
    gw.write_config()
    result = gw.cli("reload")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config v2" in result.stdout
    wait_until(lambda: {w["config_version"] for w in gw.workers()} == {2}, 10,
               f"the workers to serve v2 (log: {gw.log_text()})")
    r = requests.get(gw.url + "/", timeout=10)
    assert (r.status_code, r.text) == (200, "app")         # no interceptor applies to "/"
    worker = gw.workers()[0]["pid"]
    mapped = serving_objects(worker)
    assert any("/gevent/" in path for path in mapped), mapped      # the probe sees them
    assert any("/httptools/" in path for path in mapped), mapped
    master = serving_objects(gw.master_pid)
    assert master == [], f"the master maps what only workers should load: {master}"
