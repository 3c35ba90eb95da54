"""Config loading, validation and normalisation (dakia_prefork/config)."""
from __future__ import annotations

import copy
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from dakia_prefork.config import ConfigError, dump_normalised, load, load_source, validate
from dakia_prefork.config.schema import load_schema

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "dakia-config.sample.yaml"
REPO_CONFIG = Path(__file__).parents[2] / "etc" / "dakia" / "dakia.yaml"

MINIMAL_GATEWAY: dict[str, Any] = {
    "name": "main",
    "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
    "upstreams": [{"name": "app", "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": 3000}}]}],
}


def minimal(**top: Any) -> dict[str, Any]:
    """A smallest valid config, with top-level keys overridden."""
    config: dict[str, Any] = {"gateways": [copy.deepcopy(MINIMAL_GATEWAY)]}
    config.update(top)
    return config


def with_gateway(**keys: Any) -> dict[str, Any]:
    """A minimal config whose one gateway has ``keys`` set (or replaced)."""
    gateway = copy.deepcopy(MINIMAL_GATEWAY)
    gateway.update(keys)
    return {"gateways": [gateway]}


def errors_of(raw: dict[str, Any], base_dir: str = "/etc/dakia") -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, base_dir=base_dir)
    return info.value.errors


def node(host: str = "127.0.0.1", port: int = 3000, **extra: Any) -> dict[str, Any]:
    return {"address": {"host": host, "port": port}, **extra}


# --- the sample and the repo's config -------------------------------------------------------

def test_dakia_sample_validates_with_notices_only() -> None:
    config, notices = load(str(SAMPLE))
    assert notices[:11] == [
        "daemon: daemon mode is chosen on the command line (dakia-master start --daemon); "
        "accepted and ignored",
        "upgrade_sock: binary upgrades pass the listening sockets to the new master "
        "(USR2, DAKIA_INHERIT_FDS); accepted and ignored",
        "user: start dakia-master as the user it should run as (e.g. systemd User=); "
        "accepted and ignored",
        "group: start dakia-master with the group it should run as (e.g. systemd Group=); "
        "accepted and ignored",
        "threads: dakia-prefork scales with worker processes (workers); accepted and ignored",
        "work_stealing: tunes Dakia's Rust runtime; accepted and ignored",
        "upstream_connect_offload_threadpools: tunes Dakia's Rust runtime; accepted and ignored",
        "upstream_connect_offload_thread_per_pool: tunes Dakia's Rust runtime; "
        "accepted and ignored",
        "upstream_debug_ssl_keylog: set SSLKEYLOGFILE in the environment of dakia-master to log "
        "upstream TLS keys; accepted and ignored",
        "grace_period_seconds: draining starts at once and is bounded by graceful_timeout; "
        "accepted and ignored",
        "graceful_shutdown_timeout_seconds: used as graceful_timeout (30)",
    ]
    assert notices[11] == (
        "gateways[0].upstreams[0].upstream_nodes[0].address.host: 0.0.0.0 is an address to "
        "bind, not to connect to; connecting to 127.0.0.1 (this host)")
    assert len(notices) == 16
    for dakia_key in ("daemon", "upgrade_sock", "user", "group", "threads", "work_stealing",
                      "grace_period_seconds", "graceful_shutdown_timeout_seconds"):
        assert dakia_key not in config
    assert config["graceful_timeout"] == 30
    assert config["upstream_keepalive_pool_size"] == 10
    assert config["pid_file"] == "/var/run/dakia.pid"
    assert config["error_log"] == "/var/log/dakia/error.log"
    gateway = config["gateways"][0]
    assert gateway["routers"][2] == {"upstream": "default", "filter": None}
    assert gateway["filters"][0] == {"name": "controller",
                                     "path": {"$starts_with": "/controller"},
                                     "header.host": "localhost"}
    assert gateway["interceptors"][2] == {
        "name": "short_circuit", "enabled": True, "filter": "short_circuit", "config": {},
        "response": {"header.terminated": True, "status": 502}}
    assert {n["address"]["host"] for u in gateway["upstreams"]
            for n in u["upstream_nodes"]} == {"127.0.0.1"}


def test_shipped_configs_validate(tmp_path: Path) -> None:
    config, _ = load(str(SAMPLE))
    assert config["gateways"]
    # The repo's default config needs the admin token file beside it, which `make run`,
    # `make check` and `init-config` write (it is not in git): without it, the error says
    # which file is missing.
    shipped = tmp_path / "dakia.yaml"
    shipped.write_bytes(REPO_CONFIG.read_bytes())
    with pytest.raises(ConfigError) as missing:
        load(str(shipped))
    assert f"admin.token_file: no such file: {tmp_path / 'admin.token'}" in missing.value.errors
    (tmp_path / "admin.token").write_text("t" * 64 + "\n")
    config, _ = load(str(shipped))
    assert config["gateways"] and config["admin"]["listen"] == "127.0.0.1:9901"


def test_normalised_config_is_a_fixed_point() -> None:
    config, _ = load(str(SAMPLE))
    again, notices = validate(copy.deepcopy(config), base_dir="/somewhere/else")
    assert again == config
    assert notices == []
    assert dump_normalised(again) == dump_normalised(config)


def test_validate_does_not_touch_its_input() -> None:
    raw = load_source(str(SAMPLE))
    before = copy.deepcopy(raw)
    validate(raw, base_dir=str(FIXTURES))
    assert raw == before


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(load_schema())


# --- defaults, normalisation ----------------------------------------------------------------

def test_defaults_are_filled(tmp_path: Path) -> None:
    config, notices = validate(minimal(), base_dir=str(tmp_path / "etc" / "dakia"))
    assert notices == ["gateways[0].routers: no routers and no upstream marked default: true; "
                       "every request will be answered 404"]
    gateway = config.pop("gateways")[0]
    assert config == {
        "workers": "auto",
        "graceful_timeout": 30,
        "worker_timeout": 30,
        "http_parser": "auto",
        "keep_versions": 10,
        "pid_file": str(tmp_path / "var" / "run" / "dakia.pid"),
        "state_dir": str(tmp_path / "var" / "lib" / "dakia"),
        "access_log": "stdout",
        "access_log_format": "combined",
        "access_log_fields": None,
        "metrics": {"enabled": True},
        "error_log": "stderr",
        "log_level": "info",
        "upstream_keepalive_pool_size": 128,
        "limits": {"max_header_bytes": 65536, "max_body_bytes": None,
                   "client_header_timeout": 60, "tls_handshake_timeout": 10,
                   "client_body_timeout": 60,
                   "keepalive_timeout": 75, "send_timeout": 60, "max_connections": 10000},
        "headers_with_underscores": "drop",
        "path_normalization": {"merge_slashes": True, "escaped_slashes": "keep",
                               "forward_raw_path": False},
        "config_load": {"timeout": 30, "max_memory_bytes": 2147483648},
        "admin": None,
        "config_source": None,
    }
    assert gateway == {
        "name": "main",
        "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
        "acme": None,
        "real_ip": None,
        "downstreams": [],
        "routers": [],
        "interceptors": [],
        "filters": [],
        "headers_with_underscores": None,
        "path_normalization": None,
        "upstreams": [{
            "name": "app",
            "default": False,
            "traffic_distribution_policy": {"node_selection_algorithm": "round_robin"},
            "timeouts": {"connect": 5, "read": 60, "write": 60, "idle": 60,
                         "websocket_idle": 3600},
            "retries": 1,
            "health_check": None,
            "passive_health": {"max_failures": 3, "eject_seconds": 10},
            "resolve_ttl": 30,
            "upstream_nodes": [{"address": {"host": "127.0.0.1", "port": 3000},
                                "tls": False, "sni": None, "tls_verify": True,
                                "ca_file": None, "client_cert": None, "client_key": None,
                                "weight": 1}],
        }],
    }


def test_partial_limits_and_timeouts_are_completed() -> None:
    raw = minimal(limits={"max_body_bytes": 1024})
    raw["gateways"][0]["upstreams"][0]["timeouts"] = {"read": 5}
    config, _ = validate(raw, base_dir="/")
    assert config["limits"]["max_body_bytes"] == 1024
    assert config["limits"]["max_header_bytes"] == 65536
    assert config["gateways"][0]["upstreams"][0]["timeouts"] == {
        "connect": 5, "read": 5, "write": 60, "idle": 60, "websocket_idle": 3600}


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    raw = minimal(pid_file="run/d.pid", state_dir="../state", access_log="logs/access.log",
                  error_log="/abs/error.log", admin={"token_file": "token"})
    raw["gateways"][0]["bind_addresses"].append({"unix": "sock/gw.sock"})
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"].append({"address": {"unix": "app.sock"}})
    config, _ = validate(raw, base_dir=str(tmp_path))
    assert config["pid_file"] == str(tmp_path / "run" / "d.pid")
    assert config["state_dir"] == str(tmp_path.parent / "state")
    assert config["access_log"] == str(tmp_path / "logs" / "access.log")
    assert config["error_log"] == "/abs/error.log"
    assert config["admin"] == {"listen": "127.0.0.1:9901", "token_file": str(tmp_path / "token")}
    gateway = config["gateways"][0]
    assert gateway["bind_addresses"][1] == {"unix": str(tmp_path / "sock" / "gw.sock")}
    assert gateway["upstreams"][0]["upstream_nodes"][1]["address"] == {
        "unix": str(tmp_path / "app.sock")}


def test_relative_base_dir_is_made_absolute(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    config, _ = validate(minimal(pid_file="x.pid"), base_dir="conf")
    assert config["pid_file"] == str(tmp_path / "conf" / "x.pid")


@pytest.mark.parametrize(("value", "expected"), [
    ("stdout", "stdout"), ("off", "off"), (False, "off")])
def test_access_log_keywords(value: Any, expected: str) -> None:
    config, _ = validate(minimal(access_log=value), base_dir="/")
    assert config["access_log"] == expected


def test_yaml_bare_off_means_off() -> None:
    raw = yaml.safe_load("access_log: off\n")
    config, _ = validate(minimal(**raw), base_dir="/")
    assert config["access_log"] == "off"


def test_workers_and_integral_floats() -> None:
    config, _ = validate(minimal(workers=4, keep_versions=3.0), base_dir="/")
    assert config["workers"] == 4
    assert isinstance(config["keep_versions"], int)
    raw = minimal()
    raw["gateways"][0]["bind_addresses"][0]["port"] = 8080.0
    config, _ = validate(raw, base_dir="/")
    assert type(config["gateways"][0]["bind_addresses"][0]["port"]) is int


def test_graceful_timeout_wins_over_dakia_key() -> None:
    config, notices = validate(
        minimal(graceful_timeout=5, graceful_shutdown_timeout_seconds=99), base_dir="/")
    assert config["graceful_timeout"] == 5
    assert "graceful_shutdown_timeout_seconds: ignored: graceful_timeout is given and wins" \
        in notices


def test_addresses_are_normalised() -> None:
    raw = with_gateway(bind_addresses=[{"host": "[::]", "port": 80},
                                       {"host": "LocalHost", "port": 81}],
                       upstreams=[{"name": "a", "upstream_nodes": [
                           node("::"), node("0.0.0.0"), node("[0:0::1]"), node("API.internal")]}])
    config, notices = validate(raw, base_dir="/")
    gateway = config["gateways"][0]
    assert gateway["bind_addresses"] == [{"host": "::", "port": 80},
                                         {"host": "localhost", "port": 81}]
    assert [n["address"]["host"] for n in gateway["upstreams"][0]["upstream_nodes"]] == [
        "::1", "127.0.0.1", "::1", "api.internal"]
    assert notices[0] == ("gateways[0].upstreams[0].upstream_nodes[0].address.host: :: is an "
                          "address to bind, not to connect to; connecting to ::1 (this host)")


def test_downstreams_are_normalised() -> None:
    raw = with_gateway(downstreams=[{"host": "Example.COM."}, {"host": "[::1]"},
                                    {"host": "*.Example.net"}, {"host": "~^API\\d+$"},
                                    {"host": "*"}])
    config, _ = validate(raw, base_dir="/")
    assert [d["host"] for d in config["gateways"][0]["downstreams"]] == [
        "example.com", "::1", "*.example.net", "~^API\\d+$", "*"]


def test_null_lists_count_as_empty() -> None:
    config, _ = validate(with_gateway(downstreams=None, routers=None, interceptors=None,
                                      filters=None), base_dir="/")
    gateway = config["gateways"][0]
    assert [gateway[k] for k in ("downstreams", "routers", "interceptors", "filters")] == [
        [], [], [], []]


def test_routers_resolve_the_default_alias() -> None:
    raw = with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()]},
                                  {"name": "b", "default": True, "upstream_nodes": [node()]}],
                       routers=[{"upstream": "default"}, {"upstream": "a", "filter": None}])
    config, notices = validate(raw, base_dir="/")
    assert config["gateways"][0]["routers"] == [{"upstream": "b", "filter": None},
                                                {"upstream": "a", "filter": None}]
    assert notices == ["gateways[0].routers[1]: never used: gateways[0].routers[0] has no "
                       "filter and takes every request first"]


def test_an_upstream_named_default_wins_over_the_alias() -> None:
    raw = with_gateway(upstreams=[{"name": "default", "upstream_nodes": [node()]},
                                  {"name": "b", "default": True, "upstream_nodes": [node()]}],
                       routers=[{"upstream": "default"}])
    config, _ = validate(raw, base_dir="/")
    assert config["gateways"][0]["routers"] == [{"upstream": "default", "filter": None}]


def test_interceptors_are_normalised_and_their_maps_kept() -> None:
    raw = with_gateway(
        filters=[{"name": "f", "path": "/x"}],
        interceptors=[{"name": "request_id"},
                      {"name": "response_rewrite", "enabled": False, "filter": "f",
                       "rewrite": {"header.x": "y"}},
                      {"name": "controller", "config": {"strip_prefix": "/controller"}}])
    raw["admin"] = {"listen": "127.0.0.1:9901"}
    config, _ = validate(raw, base_dir="/")
    assert config["gateways"][0]["interceptors"] == [
        {"name": "request_id", "enabled": True, "filter": None, "config": {}},
        {"name": "response_rewrite", "enabled": False, "filter": "f", "config": {},
         "rewrite": {"header.x": "y"}},
        {"name": "controller", "enabled": True, "filter": None,
         "config": {"strip_prefix": "/controller"}},
    ]


def test_filters_are_normalised() -> None:
    raw = with_gateway(filters=[{"name": "f", "ds.req.path": {"$starts_with": "/a"},
                                 "header.Host": "Example.com", "req.header.X-Key": "k",
                                 "$or": [{"req.query.q": "1"}, {"ds.req.method": "GET"}]}])
    config, _ = validate(raw, base_dir="/")
    assert config["gateways"][0]["filters"] == [
        {"name": "f", "path": {"$starts_with": "/a"}, "header.host": "Example.com",
         "header.x-key": "k", "$or": [{"query.q": "1"}, {"method": "GET"}]}]


def test_admin_listen_is_normalised() -> None:
    config, _ = validate(minimal(admin={"listen": "[::1]:9000"}), base_dir="/")
    assert config["admin"] == {"listen": "[::1]:9000", "token_file": None}
    config, _ = validate(minimal(admin={"listen": "LOCALHOST:9901"}), base_dir="/")
    assert config["admin"]["listen"] == "localhost:9901"


# --- errors: each kind at its exact path ---------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    (minimal(workerz=2), "workerz: unknown key; did you mean 'workers'?"),
    (minimal(limits={"max_header_byte": 1}),
     "limits.max_header_byte: unknown key; did you mean 'max_header_bytes'?"),
    (with_gateway(bnid_addresses=[]),
     "gateways[0].bnid_addresses: unknown key; did you mean 'bind_addresses'?"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node(wieght=2)]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].wieght: unknown key; did you mean 'weight'?"),
    (with_gateway(routers=[{"upstream": "app", "zzz": 1}]),
     "gateways[0].routers[0].zzz: unknown key (expected: upstream, filter, name)"),
    (with_gateway(bind_addresses=[{"host": "0.0.0.0", "port": 70000}]),
     "gateways[0].bind_addresses[0].port: 70000 is greater than the maximum of 65535"),
    (with_gateway(bind_addresses=[{"host": "0.0.0.0", "port": 0}]),
     "gateways[0].bind_addresses[0].port: 0 is less than the minimum of 1"),
    (with_gateway(bind_addresses=[{"host": "0.0.0.0", "port": "80"}]),
     "gateways[0].bind_addresses[0].port: '80' is not of type 'integer'"),
    (with_gateway(bind_addresses=[{"host": "0.0.0.0"}]),
     "gateways[0].bind_addresses[0]: expected {host, port} or {unix: path}, "
     "got {'host': '0.0.0.0'}"),
    (with_gateway(bind_addresses=[{"host": "a", "port": 1, "unix": "/s"}]),
     "gateways[0].bind_addresses[0]: expected {host, port} or {unix: path}, "
     "got {'host': 'a', 'port': 1, 'unix': '/s'}"),
    (with_gateway(bind_addresses=[]), "gateways[0].bind_addresses: [] should be non-empty"),
    (with_gateway(bind_addresses=[{"host": "bad host", "port": 1}]),
     "gateways[0].bind_addresses[0].host: 'bad host' is not an IP address or a host name"),
    (with_gateway(bind_addresses=[{"host": "a:80", "port": 80}]),
     "gateways[0].bind_addresses[0].host: give the port in 'port', not in 'host'"),
    ({"workers": 2}, "gateways: required key is missing"),
    ({"gateways": []}, "gateways: [] should be non-empty"),
    ({"gateways": [{"name": "x", "bind_addresses": [{"unix": "/s"}]}]},
     "gateways[0].upstreams: required key is missing"),
    (minimal(workers=0), "workers: expected a positive integer or 'auto', got 0"),
    (minimal(workers="many"), "workers: expected a positive integer or 'auto', got 'many'"),
    (minimal(http_parser="llhttp"),
     "http_parser: 'llhttp' is not one of ['auto', 'h11', 'httptools']"),
    (minimal(access_log=""), "access_log: expected 'stdout', 'off' or a file path, got ''"),
    (minimal(worker_timeout=0), "worker_timeout: 0 is less than or equal to the minimum of 0"),
    (minimal(admin={"listen": "9901"}),
     "admin.listen: expected \"host:port\" (e.g. \"127.0.0.1:9901\"), got '9901'"),
    (minimal(admin={"listen": "127.0.0.1:8080"}),
     "admin.listen: 127.0.0.1:8080 is already bound by gateway 'main' "
     "(gateways[0].bind_addresses[0])"),
    (minimal(admin={"token_file": "/nonexistent/token"}),
     "admin.token_file: no such file: /nonexistent/token"),
    ({"gateways": [MINIMAL_GATEWAY, MINIMAL_GATEWAY]},
     "gateways[1].name: duplicate gateway name 'main' (also gateways[0].name)"),
    ({"gateways": [MINIMAL_GATEWAY, {**MINIMAL_GATEWAY, "name": "other"}]},
     "gateways[1].bind_addresses[0]: 127.0.0.1:8080 is already bound by gateway 'main' "
     "(gateways[0].bind_addresses[0])"),
    ({"gateways": [{**MINIMAL_GATEWAY, "bind_addresses": [{"host": "::", "port": 80}]},
                   {**MINIMAL_GATEWAY, "name": "b",
                    "bind_addresses": [{"host": "[0::0]", "port": 80}]}]},
     "gateways[1].bind_addresses[0]: [::]:80 is already bound by gateway 'main' "
     "(gateways[0].bind_addresses[0])"),
    (with_gateway(bind_addresses=[{"unix": "/run/a.sock"}, {"unix": "/run/../run/a.sock"}]),
     "gateways[0].bind_addresses[1]: unix:/run/a.sock is already bound by gateway 'main' "
     "(gateways[0].bind_addresses[0])"),
    (with_gateway(bind_addresses=[{"host": "0.0.0.0", "port": 443, "tls": {}}]),
     "gateways[0].bind_addresses[0].tls: no certificates: list some, or give the gateway an "
     "acme block to serve its ACME certificate here"),
    (with_gateway(downstreams=[{"host": "~(("}]),
     "gateways[0].downstreams[0].host: invalid regex: missing ): (("),
    (with_gateway(downstreams=[{"host": "~(a)\\1"}]),
     "gateways[0].downstreams[0].host: invalid regex: invalid escape sequence: \\1: RE2 does "
     "not support this (config regexes run in linear time: no backreferences or lookaround)"),
    (with_gateway(downstreams=[{"host": "a.*.com"}]),
     "gateways[0].downstreams[0].host: 'a.*.com': '*' is only allowed as the whole leftmost "
     "label, as in '*.example.com', or alone to match any host"),
    (with_gateway(downstreams=[{"host": "example.com:80"}]),
     "gateways[0].downstreams[0].host: 'example.com:80': a host pattern has no port (the "
     "Host header's port is ignored)"),
    (with_gateway(downstreams=[{"host": "a.com"}, {"host": "A.com"}]),
     "gateways[0].downstreams[1].host: duplicate host pattern 'a.com' "
     "(also gateways[0].downstreams[0].host)"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()]},
                             {"name": "a", "upstream_nodes": [node()]}]),
     "gateways[0].upstreams[1].name: duplicate upstream name 'a' "
     "(also gateways[0].upstreams[0].name)"),
    (with_gateway(upstreams=[{"name": "a", "default": True, "upstream_nodes": [node()]},
                             {"name": "b", "default": True, "upstream_nodes": [node()]}]),
     "gateways[0].upstreams[1].default: only one upstream may be the default; "
     "'a' (gateways[0].upstreams[0]) already is"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [
        node(tls=True, ca_file="/nonexistent/ca.pem")]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].ca_file: no such file: /nonexistent/ca.pem"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [
        node(tls=True, client_key="/etc/hostname")]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].client_key: client_key needs client_cert"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [
        {"address": {"unix": "/run/u.sock"}, "tls": True}]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].sni: a TLS node on a unix socket needs sni "
     "(the name to verify), or tls_verify: false"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node(tls=True, sni="a b")]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].sni: 'a b' is not a host name"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                              "traffic_distribution_policy":
                                  {"node_selection_algorithm": "fastest"}}]),
     "gateways[0].upstreams[0].traffic_distribution_policy.node_selection_algorithm: "
     "unknown node selection algorithm 'fastest' (one of round_robin, weighted, "
     "least_connection, least_response_time, ip_hash, url_hash, random, p2c)"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                              "health_check": {"path": "healthz"}}]),
     "gateways[0].upstreams[0].health_check.path: a path starting with /, got 'healthz'"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                              "health_check": {"expected_statuses": [200, 700]}}]),
     "gateways[0].upstreams[0].health_check.expected_statuses[1]: 700 is greater than the "
     "maximum of 599"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()], "retries": -1}]),
     "gateways[0].upstreams[0].retries: -1 is less than the minimum of 0"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                              "passive_health": {"max_failures": 2, "eject_seconds": 0}}]),
     "gateways[0].upstreams[0].passive_health.eject_seconds: 0 is less than or equal to the "
     "minimum of 0"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                              "timeouts": {"connect": 0}}]),
     "gateways[0].upstreams[0].timeouts.connect: 0 is less than or equal to the minimum of 0"),
    (with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node(weight=0)]}]),
     "gateways[0].upstreams[0].upstream_nodes[0].weight: 0 is less than the minimum of 1"),
    (with_gateway(routers=[{"upstream": "app"}, {"upstream": "app", "filter": "x"}]),
     "gateways[0].routers[1].filter: no filter named 'x'"),
    (with_gateway(routers=[{"upstream": "nope"}]),
     "gateways[0].routers[0].upstream: no upstream named 'nope'"),
    (with_gateway(routers=[{"upstream": "default"}]),
     "gateways[0].routers[0].upstream: no upstream named 'default' and no upstream is "
     "marked default: true"),
    (with_gateway(interceptors=[{"name": "request_id", "filter": "nope"}]),
     "gateways[0].interceptors[0].filter: no filter named 'nope'"),
    (with_gateway(interceptors=[{"name": "gzip"}]),
     "gateways[0].interceptors[0].name: unknown interceptor 'gzip' (known: basic_auth, "
     "controller, cors, external_plugin, ip_restriction, jwt_auth, key_auth, metrics, "
     "native_plugin, rate_limiter, request_id, request_rewrite, response_rewrite, server_version, "
     "short_circuit, try_file, use_file; or a plugin: class: 'module:Class', or a name "
     "declared in dakia_prefork.interceptors)"),
    (with_gateway(interceptors=[{"name": "cors", "config": [1]}]),
     "gateways[0].interceptors[0].config: [1] is not of type 'object'"),
    (with_gateway(filters=[{"name": "f"}]),
     "gateways[0].filters[0]: a filter needs at least one condition besides its name, "
     "got {'name': 'f'}"),
    (with_gateway(filters=[{"name": "f", "path": "/a"}, {"name": "f", "path": "/b"}]),
     "gateways[0].filters[1].name: duplicate filter name 'f' (also gateways[0].filters[0].name)"),
    (with_gateway(filters=[{"name": "f", "path": "/a"}, {"name": "g", "path": {"$matches": "("}}]),
     "gateways[0].filters[1].path.$matches: invalid regex: missing ): ("),
    (with_gateway(filters=[{"name": "g", "path": {"$matches": "^/(?!admin)"}}]),
     "gateways[0].filters[0].path.$matches: invalid regex: invalid perl operator: (?!: RE2 "
     "does not support this (config regexes run in linear time: no backreferences or "
     "lookaround)"),
    (with_gateway(filters=[{"name": "f", "ds.req.pth": "/a"}]),
     "gateways[0].filters[0].ds.req.pth: unknown filter part 'ds.req.pth' (expected path, "
     "method, scheme, host, remote_addr, client_subject, header.<name> or query.<name>)"),
    (minimal(graceful_timeout=float("nan")), "graceful_timeout: nan is not a finite number"),
    (minimal(limits={1: 2}), "limits: keys must be strings, got 1"),
])
def test_error_kinds_and_their_paths(raw: dict[str, Any], expected: str) -> None:
    assert expected in errors_of(raw)


def test_a_filter_that_does_not_compile_is_not_also_reported_as_missing() -> None:
    raw = with_gateway(filters=[{"name": "f", "path": {"$bogus": 1}}],
                       routers=[{"upstream": "app", "filter": "f"}])
    assert errors_of(raw) == ["gateways[0].filters[0].path.$bogus: unknown operator '$bogus'"]


def test_every_error_is_reported_sorted_by_path() -> None:
    gateways = [{**MINIMAL_GATEWAY, "name": f"g{i}",
                 "bind_addresses": [{"host": "127.0.0.1", "port": 9000 + i}]}
                for i in range(12)]
    gateways[2]["bind_addresses"][0]["port"] = 70000
    gateways[10]["bind_addresses"][0]["port"] = 70001
    assert errors_of({"gateways": gateways, "workers": 0, "keep_versions": 0}) == [
        "gateways[2].bind_addresses[0].port: 70000 is greater than the maximum of 65535",
        "gateways[10].bind_addresses[0].port: 70001 is greater than the maximum of 65535",
        "keep_versions: 0 is less than the minimum of 1",
        "workers: expected a positive integer or 'auto', got 0",
    ]


def test_semantic_errors_are_all_collected() -> None:
    raw = with_gateway(routers=[{"upstream": "x", "filter": "y"}],
                       interceptors=[{"name": "nope"}])
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["ca_file"] = "/nonexistent"
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["tls"] = True
    assert len(errors_of(raw)) == 4


def test_schema_errors_and_semantic_errors_of_one_gateway_come_together() -> None:
    # Issue 10 asks for this: a schema error no longer hides the semantic ones (it used to
    # stop the run before them). The section that failed the schema is skipped: its own
    # semantic checks and the references into it.
    raw = with_gateway(routers=[{"upstream": "x"}, {"upstream": "app", "filter": "paymnet"}],
                       bind_addresses=[{"host": "a", "port": 0}])
    assert errors_of(raw) == [
        "gateways[0].bind_addresses[0].port: 0 is less than the minimum of 1",
        "gateways[0].routers[0].upstream: no upstream named 'x'",
        "gateways[0].routers[1].filter: no filter named 'paymnet'"]
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["address"]["port"] = 70000
    # With the upstreams unreadable, a router's upstream cannot be judged: not reported.
    assert errors_of(raw) == [
        "gateways[0].bind_addresses[0].port: 0 is less than the minimum of 1",
        "gateways[0].routers[1].filter: no filter named 'paymnet'",
        "gateways[0].upstreams[0].upstream_nodes[0].address.port: "
        "70000 is greater than the maximum of 65535"]


def test_references_into_a_section_that_failed_the_schema_are_not_reported() -> None:
    raw = with_gateway(filters=[{"name": "f", "path": "/"}, {"name": 5, "path": "/"}],
                       routers=[{"upstream": "app", "filter": "f"}],
                       interceptors=[{"name": "request_id", "filter": "f"}])
    errors = errors_of(raw)
    assert len(errors) == 1 and errors[0].startswith("gateways[0].filters[1].name: ")


def test_schema_errors_and_semantic_errors_of_other_gateways_come_together() -> None:
    broken = copy.deepcopy(MINIMAL_GATEWAY)
    broken["bind_addresses"] = [{"host": "a", "port": 0}]
    other = copy.deepcopy(MINIMAL_GATEWAY)
    other.update(name="second", routers=[{"upstream": "nowhere"}],
                 bind_addresses=[{"host": "127.0.0.1", "port": 8081}])
    errors = errors_of({"gateways": [broken, other]})
    assert errors[0] == "gateways[0].bind_addresses[0].port: 0 is less than the minimum of 1"
    assert len(errors) == 2
    assert errors[1].startswith("gateways[1].routers[0].upstream: ")


def test_a_setting_that_fails_the_schema_does_not_hide_the_gateways_errors() -> None:
    raw = with_gateway(routers=[{"upstream": "nowhere"}])
    raw["limits"] = {"max_body_bytes": "lots"}
    raw["wrokers"] = 2
    errors = errors_of(raw)
    assert [line.split(":")[0] for line in errors] == [
        "gateways[0].routers[0].upstream", "limits.max_body_bytes", "wrokers"]


def test_broken_gateways_list_still_reports_the_settings_errors() -> None:
    errors = errors_of({"gateways": "none", "admin": {"listen": "nowhere"}})
    assert [line.split(":")[0] for line in errors] == ["admin.listen", "gateways"]


def test_duplicate_binds_are_judged_only_between_readable_addresses() -> None:
    first = copy.deepcopy(MINIMAL_GATEWAY)
    first["upstreams"] = "none"
    second = copy.deepcopy(MINIMAL_GATEWAY)
    second["name"] = "second"
    errors = errors_of({"gateways": [first, second]})
    assert [line.split(":")[0] for line in errors] == [
        "gateways[0].upstreams", "gateways[1].bind_addresses[0]"]
    first["bind_addresses"][0]["bakclog"] = 5
    errors = errors_of({"gateways": [first, second]})
    assert [line.split(":")[0] for line in errors] == [
        "gateways[0].bind_addresses[0].bakclog", "gateways[0].upstreams"]


@pytest.mark.parametrize("where, value", [
    (("gateways", 0), 5), (("gateways", 0, "bind_addresses"), {"a": 1}),
    (("gateways", 0, "bind_addresses", 0), "x"), (("gateways", 0, "upstreams", 0), None),
    (("gateways", 0, "upstreams", 0, "upstream_nodes"), [[]]),
    (("gateways", 0, "routers"), [{"filter": {"path": 3}}]), (("gateways", 0, "name"), [1]),
    (("gateways", 0, "interceptors"), [[{"name": "x"}]]), (("limits",), [1]),
    (("admin",), "127.0.0.1:9901"), (("workers",), {"n": 1}), (("access_log",), 7),
])
def test_any_misshapen_part_is_a_config_error_and_never_a_crash(
        where: tuple[str | int, ...], value: Any) -> None:
    raw: Any = minimal()
    raw["gateways"].append(copy.deepcopy(MINIMAL_GATEWAY) | {"name": "other", "routers": [
        {"upstream": "nowhere"}], "bind_addresses": [{"host": "127.0.0.1", "port": 9}]})
    target = raw
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    errors = errors_of(raw)
    # The other gateway's semantic error is reported beside the schema error.
    assert any(line.startswith("gateways[1].routers[0].upstream: ") for line in errors)
    assert len(errors) >= 2


def test_non_mapping_config() -> None:
    with pytest.raises(ConfigError, match="the configuration must be a mapping, got list"):
        validate([], base_dir="/")  # type: ignore[arg-type]


def test_config_error_text_and_pickling() -> None:
    error = ConfigError(["a: one", "b: two"])
    assert str(error) == "a: one\nb: two"
    copied = pickle.loads(pickle.dumps(error))
    assert copied.errors == ["a: one", "b: two"]
    assert ConfigError("x: single").errors == ["x: single"]


# --- files: YAML, JSON, file-level errors ---------------------------------------------------

def test_yaml_and_json_give_the_same_config(tmp_path: Path) -> None:
    raw = minimal(pid_file="d.pid")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "c.json").write_text(json.dumps(raw))
    (tmp_path / "c.yml").write_text(json.dumps(raw))  # JSON text read as YAML
    from_yaml, _ = load(str(tmp_path / "c.yaml"))
    from_json, _ = load(str(tmp_path / "c.json"))
    from_yml, _ = load(str(tmp_path / "c.yml"))
    assert from_yaml == from_json == from_yml
    assert from_yaml["pid_file"] == str(tmp_path / "d.pid")
    assert dump_normalised(from_yaml) == dump_normalised(from_json)


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("workers: 2\ngateways:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_source(str(path))
    [error] = info.value.errors
    assert error.startswith(f"{path}: line 4, column 1: ")
    assert "expected ',' or ']'" in error


def test_yaml_tab_indentation_error(tmp_path: Path) -> None:
    path = tmp_path / "tab.yaml"
    path.write_text("gateways:\n\t- name: x\n")
    with pytest.raises(ConfigError,
                       match=r"tab\.yaml: line 2, column 1: .*'\\t' that cannot start any token"):
        load_source(str(path))


def test_yaml_duplicate_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("workers: 2\nlog_level: info\nworkers: 3\n")
    with pytest.raises(ConfigError) as info:
        load_source(str(path))
    assert info.value.errors == [
        f"{path}: line 3, column 1: while constructing a mapping; found duplicate key 'workers'"]


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert load_source(str(path))["other"] == {"x": 3, "y": 2}


def test_json_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "workers": 2,\n  "gateways": [}\n')
    with pytest.raises(ConfigError) as info:
        load_source(str(path))
    assert info.value.errors == [f"{path}: line 3, column 16: Expecting value"]


def test_json_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"workers": 1, "workers": 2}')
    with pytest.raises(ConfigError, match="duplicate key 'workers'"):
        load_source(str(path))


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("- a\n- b\n", "the top level must be a mapping, got list"),
    ("just a string\n", "the top level must be a mapping, got str"),
])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_source(str(path))
    assert info.value.errors == [f"{path}: {message}"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.errors == [f"{path}: No such file or directory"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"user: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text"):
        load_source(str(path))


def test_yaml_only_types_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "date.yaml"
    path.write_text(yaml.safe_dump(minimal()) + "user: 2024-01-01\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.errors == [
        "user: a date value is not allowed here; quote it to make it a string"]


def test_load_resolves_against_the_file_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc" / "dakia"
    conf_dir.mkdir(parents=True)
    (conf_dir / "dakia.yaml").write_text(yaml.safe_dump(minimal()))
    config, _ = load(os.path.relpath(conf_dir / "dakia.yaml"))
    assert config["pid_file"] == str(tmp_path / "var" / "run" / "dakia.pid")
    assert config["state_dir"] == str(tmp_path / "var" / "lib" / "dakia")


# --- canonical dump --------------------------------------------------------------------------

def test_dump_normalised_is_canonical() -> None:
    config, _ = validate(minimal(), base_dir="/")
    text = dump_normalised(config)
    assert text.endswith("}\n")
    assert json.loads(text) == config
    reordered = dict(reversed(list(config.items())))
    assert dump_normalised(reordered) == text
    keys = list(json.loads(text))
    assert keys == sorted(keys)


# --- upstream traffic settings ---------------------------------------------------------------

def test_every_balancer_is_a_supported_algorithm() -> None:
    from dakia_prefork.balance import ALGORITHMS
    from dakia_prefork.config.upstreams import SUPPORTED_ALGORITHMS
    assert sorted(SUPPORTED_ALGORITHMS) == sorted(ALGORITHMS)


@pytest.mark.parametrize("algorithm", ["round_robin", "weighted", "least_connection",
                                       "least_response_time", "ip_hash", "url_hash",
                                       "random", "p2c"])
def test_every_algorithm_is_accepted(algorithm: str) -> None:
    raw = with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                                   "traffic_distribution_policy":
                                       {"node_selection_algorithm": algorithm}}])
    validate(raw, base_dir="/")


def test_health_check_defaults_are_filled() -> None:
    raw = with_gateway(upstreams=[{"name": "a", "upstream_nodes": [node()],
                                   "health_check": {"path": "/healthz"}}])
    config, _ = validate(raw, base_dir="/")
    assert config["gateways"][0]["upstreams"][0]["health_check"] == {
        "path": "/healthz", "interval": 5, "timeout": 2, "healthy_threshold": 2,
        "unhealthy_threshold": 3, "expected_statuses": [200]}


def test_tls_node_files_resolve_and_load(tmp_path: Path) -> None:
    from tests.tlsutil import make_pki
    pki = make_pki(str(tmp_path))
    raw = with_gateway(upstreams=[{"name": "a", "default": True, "upstream_nodes": [
        node(host="api.internal", tls=True, ca_file="ca.pem", client_cert="client.pem",
             client_key="client.key")]}])
    config, notices = validate(raw, base_dir=str(tmp_path))
    got = config["gateways"][0]["upstreams"][0]["upstream_nodes"][0]
    assert got["ca_file"] == pki.ca_file and got["client_cert"] == pki.client_cert
    assert got["client_key"] == pki.client_key and notices == []
    # A key that is not the certificate's.
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["client_key"] = "server.key"
    [error] = errors_of(raw, base_dir=str(tmp_path))
    assert error.startswith("gateways[0].upstreams[0].upstream_nodes[0].client_cert: "
                            "cannot load the client certificate and key: ")
    # Not a CA bundle.
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0].update(
        client_key="client.key", ca_file="client.key")
    [error] = errors_of(raw, base_dir=str(tmp_path))
    assert error.startswith("gateways[0].upstreams[0].upstream_nodes[0].ca_file: "
                            "cannot load the CA bundle")


def test_tls_settings_on_a_plain_node_are_noticed() -> None:
    raw = with_gateway(upstreams=[{"name": "a", "default": True,
                                   "upstream_nodes": [node(sni="x.example")]}])
    _, notices = validate(raw, base_dir="/")
    assert notices == ["gateways[0].upstreams[0].upstream_nodes[0].sni: ignored: the node "
                       "does not use TLS (tls: false)"]
