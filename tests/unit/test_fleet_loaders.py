"""fleet/loaders.py: what the loader child makes of a node's sources, without etcd (an
endpoint that refuses at once stands for an etcd that is down)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dakia_prefork.config.model import EtcdSettings
from dakia_prefork.config.store import ConfigStore
from dakia_prefork.fleet.loaders import document_loader, hup_loader, start_loader

KEY = "/dakia/config"


def document(port: int) -> dict[str, Any]:
    return {"gateways": [{"name": "edge", "bind_addresses": [{"host": "127.0.0.1",
                                                              "port": port}],
                          "upstreams": [{"name": "app", "default": True, "upstream_nodes": [
                              {"address": {"host": "127.0.0.1", "port": 3000}}]}]}]}


def local(tmp_path: Path) -> str:
    path = tmp_path / "local.json"
    path.write_text(json.dumps({"workers": 1, "state_dir": str(tmp_path / "state"),
                                "pid_file": str(tmp_path / "pid"),
                                "config_source": {"etcd": {"endpoints": ["http://127.0.0.1:1"],
                                                           "key": KEY}}}))
    return str(path)


DOWN = EtcdSettings(("http://127.0.0.1:1",), KEY, None, None, None, None, None, 1.0)


def test_with_etcd_down_a_start_takes_the_newest_persisted_version_of_its_key(
        tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path / "state"))
    store.write({}, 10, source=document(8081), meta={"etcd": {"key": KEY, "mod_revision": 5}})
    store.write({}, 10, source=document(8082), meta={"etcd": {"key": KEY, "mod_revision": 7}})
    store.write({}, 10, source=document(8083), meta={"etcd": {"key": "/other",
                                                             "mod_revision": 9}})
    store.write({}, 10, source=document(8084))                 # from a file
    loaded = start_loader(DOWN, str(tmp_path / "state"))(local(tmp_path))
    assert loaded.errors == []
    assert loaded.revision == 7 and loaded.source == document(8082)
    assert loaded.config is not None
    assert loaded.config["gateways"][0]["bind_addresses"][0]["port"] == 8082
    assert loaded.notices[0].startswith("config_source: etcd cannot be read (")
    assert "starting on the persisted v2 (etcd revision 7)" in loaded.notices[0]


def test_with_etcd_down_and_nothing_of_its_key_a_start_is_refused(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path / "state"))
    store.write({}, 10, source=document(8083), meta={"etcd": {"key": "/other",
                                                             "mod_revision": 9}})
    loaded = start_loader(DOWN, str(tmp_path / "state"))(local(tmp_path))
    assert loaded.config is None
    assert len(loaded.errors) == 1
    assert "http://127.0.0.1:1: connection refused" in loaded.errors[0]
    assert loaded.errors[0].endswith(f"has no version of {KEY} to start on: not started")


def test_a_hup_combines_the_local_file_with_the_document_served(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path / "state"))
    version = store.write({}, 10, source=document(8085),
                          meta={"etcd": {"key": KEY, "mod_revision": 11}})
    loaded = hup_loader(store, version, 11)(local(tmp_path))
    assert loaded.errors == [] and loaded.revision == 11 and loaded.config is not None
    assert loaded.config["workers"] == 1
    assert loaded.config["gateways"][0]["bind_addresses"][0]["port"] == 8085
    assert hup_loader(store, version + 1, 11)(local(tmp_path)).errors[0].startswith(
        f"the shared document of v{version + 1} cannot be read")


def test_a_handed_over_document_is_parsed_bounded_and_its_errors_carry_the_revision(
        tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document(8086)))
    loaded = document_loader(local(tmp_path), 12)(str(path))
    assert loaded.errors == [] and loaded.revision == 12
    assert loaded.source == document(8086)
    path.write_text('{"gateways": [')
    assert document_loader(local(tmp_path), 13)(str(path)).errors[0].startswith(
        "etcd revision 13: (shared document): line 1")
    broken = document(70000)
    path.write_text(json.dumps(broken))
    errors = document_loader(local(tmp_path), 14)(str(path)).errors
    assert errors and all(e.startswith("etcd revision 14: ") for e in errors)
    assert any("gateways[0].bind_addresses[0].port" in e for e in errors)
    path.write_bytes(b" " * (8 * 1024 * 1024 + 1))
    assert "larger than" in document_loader(local(tmp_path), 15)(str(path)).errors[0]
    assert document_loader(local(tmp_path), 16)(str(tmp_path / "gone")).errors == [
        "etcd revision 16: the document cannot be read: No such file or directory"]
