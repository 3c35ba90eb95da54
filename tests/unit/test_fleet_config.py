"""config_source (issue 12) without etcd: the local file's schema and normalisation, how a
shared document and a local file become one config (config/fleet.py), what the store
records with a version, the follower's backoff, and the admin API's ETag on a revision.
The real etcd and nodes are in tests/integration/test_fleet.py."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from dakia_prefork.admin.api import Outcome, Version
from dakia_prefork.config import ConfigError, validate
from dakia_prefork.config.fleet import combine, parse_shared, validate_combined
from dakia_prefork.config.model import Settings
from dakia_prefork.config.store import ConfigStore
from dakia_prefork.fleet.follower import BACKOFF_FIRST, BACKOFF_MAX, backoff
from dakia_prefork.status import render

GATEWAY: dict[str, Any] = {
    "name": "edge", "bind_addresses": [{"host": "${DAKIA_NODE_HOST}", "port": 8080}],
    "upstreams": [{"name": "app", "default": True,
                   "upstream_nodes": [{"address": {"host": "127.0.0.1", "port": 3000}}]}]}
SOURCE = {"etcd": {"endpoints": ["http://127.0.0.1:2379"]}}


def local(**keys: Any) -> dict[str, Any]:
    return {"workers": 2, "config_source": copy.deepcopy(SOURCE), **keys}


def test_a_local_file_with_a_source_needs_no_gateways() -> None:
    config, notices = validate(local(), base_dir="/etc/dakia")
    assert config["gateways"] == [] and notices == []
    assert config["config_source"] == {"etcd": {
        "endpoints": ["http://127.0.0.1:2379"], "key": "/dakia/config", "username": None,
        "password": None, "ca_file": None, "cert_file": None, "key_file": None,
        "timeout": 5}}
    etcd = Settings.from_config(config).etcd
    assert etcd is not None and etcd.endpoints == ("http://127.0.0.1:2379",)


def test_without_a_source_gateways_are_still_required() -> None:
    with pytest.raises(ConfigError) as info:
        validate({"workers": 2}, base_dir="/etc/dakia")
    assert info.value.errors == ["gateways: required key is missing"]
    assert Settings.from_config(validate({"gateways": [GATEWAY]}, base_dir="/",
                                         environ={"DAKIA_NODE_HOST": "::1"})[0]).etcd is None


@pytest.mark.parametrize("source, error", [
    ({}, "config_source.etcd: required key is missing"),
    ({"etcd": {}}, "config_source.etcd.endpoints: required key is missing"),
    ({"etcd": {"endpoints": ["127.0.0.1:2379"]}}, "config_source.etcd.endpoints[0]: "),
    ({"etcd": {"endpoints": ["http://a:1"], "cert_file": "c.pem"}},
     "config_source.etcd.cert_file: cert_file and key_file go together"),
    ({"etcd": {"endpoints": ["http://a:1"], "password": "x"}},
     "config_source.etcd.password: a password needs a username"),
    ({"etcd": {"endpoints": ["http://a:1"], "timeout": 0}}, "config_source.etcd.timeout: "),
])
def test_config_source_errors(source: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate({"config_source": source}, base_dir="/etc/dakia")
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_client_certificate_paths_are_relative_to_the_local_file() -> None:
    config, _ = validate(local(config_source={"etcd": {
        "endpoints": ["https://etcd:2379"], "ca_file": "ca.pem", "cert_file": "/abs/c.pem",
        "key_file": "k.pem"}}), base_dir="/etc/dakia")
    etcd = config["config_source"]["etcd"]
    assert (etcd["ca_file"], etcd["cert_file"], etcd["key_file"]) == (
        "/etc/dakia/ca.pem", "/abs/c.pem", "/etc/dakia/k.pem")


def test_combine_takes_each_key_from_its_side_and_says_what_it_ignored() -> None:
    combined, notices = combine(
        local(headers_with_underscores="allow"),
        {"gateways": [GATEWAY], "workers": 9, "headers_with_underscores": "reject"})
    assert combined["workers"] == 2
    assert combined["headers_with_underscores"] == "reject"
    assert combined["gateways"] == [GATEWAY]
    assert notices == [
        "headers_with_underscores: ignored in the local file: config_source supplies it",
        "(shared document) workers: a node-level setting, taken from the local file; "
        "ignored in the document"]


@pytest.mark.parametrize("document", [{}, {"gateways": []}, {"gateways": "x"}])
def test_a_document_without_gateways_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        combine(local(), document)
    assert info.value.errors == ["(shared document) gateways: the shared document needs at "
                                 "least one gateway"]


def test_the_combined_config_is_validated_with_this_nodes_environment(tmp_path: Path) -> None:
    path = tmp_path / "local.json"
    path.write_text(json.dumps(local(state_dir="state")))
    config, _ = validate_combined(str(path), {"gateways": [GATEWAY]},
                                  environ={"DAKIA_NODE_HOST": "127.0.0.3"})
    assert config["gateways"][0]["bind_addresses"][0]["host"] == "127.0.0.3"
    assert config["state_dir"] == str(tmp_path / "state")
    with pytest.raises(ConfigError) as info:
        validate_combined(str(path), {"gateways": [GATEWAY]}, environ={})
    assert any("gateways[0].bind_addresses[0].host" in e and "DAKIA_NODE_HOST" in e
               for e in info.value.errors), info.value.errors
    path.write_text(json.dumps({"gateways": [GATEWAY]}))
    with pytest.raises(ConfigError, match="no longer names one"):
        validate_combined(str(path), {"gateways": [GATEWAY]}, environ={})


def test_a_shared_document_is_bounded_and_named_with_its_revision() -> None:
    assert parse_shared(b'{"gateways": []}', 7) == {"gateways": []}
    with pytest.raises(ConfigError) as info:
        parse_shared(b'{"gateways": [}', 7)
    assert info.value.errors[0].startswith("(shared document) at etcd revision 7: line 1")
    with pytest.raises(ConfigError, match="larger than"):
        parse_shared(b" " * (8 * 1024 * 1024 + 1), 7)


def test_the_store_records_the_revision_of_each_version(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path))
    first = store.write({"a": 1}, keep=2, source={"s": 1},
                        meta={"etcd": {"key": "/k", "mod_revision": 41}})
    second = store.write({"a": 2}, keep=2)
    assert store.etcd_revision(first) == 41 and store.etcd_revision(second) is None
    assert store.read_meta(second) == {}
    store.write({"a": 3}, keep=2)
    assert not Path(store.meta_path(first)).exists()          # pruned with its version


def test_backoff_grows_to_its_ceiling_with_full_jitter() -> None:
    rng = random.Random(1)
    first = [backoff(1, rng) for _ in range(50)]
    late = [backoff(30, rng) for _ in range(50)]
    assert all(BACKOFF_FIRST / 2 <= d <= BACKOFF_FIRST for d in first)
    assert all(BACKOFF_MAX / 2 <= d <= BACKOFF_MAX for d in late)
    assert len(set(late)) > 40               # jittered: a fleet does not retry in lockstep


def test_the_etag_is_the_revision_on_an_etcd_source() -> None:
    assert Version(3, {}).tag == 3
    assert Version(3, {}, revision=41).tag == 41
    assert Outcome(version=3, revision=41).tag == 41 and Outcome(version=3).tag == 3


def test_status_shows_the_revision_and_the_follower() -> None:
    report = {"master": {"pid": 1}, "workers": [], "config_source": {"etcd": {
        "key": "/dakia/config", "revision": 17,
        "follower": {"state": "unreachable", "since": 0, "error": "connection refused"}}}}
    lines = render(report)
    assert lines[1].startswith("etcd     key /dakia/config  revision 17  follower "
                               "unreachable since ")
    assert lines[1].endswith(": connection refused")
