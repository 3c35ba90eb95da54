"""The typed settings of one config version (dakia_prefork/config/model.py): built from the
normalised config, immutable, in agreement with the schema's defaults, and the restart-only
diff a reload reports."""
from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from dakia_prefork.config import ConfigError, dump_normalised, validate
from dakia_prefork.config.model import (RESTART_HINT, RESTART_ONLY, GatewaySettings,
                                        HealthCheckSettings, Limits, NodeSettings, NotApplied,
                                        PathNormalization, Settings, UpstreamSettings, keeping_running,
                                        restart_only_changes)
from dakia_prefork.config.paths import resolve
from dakia_prefork.config.schema import load_schema

BASE = "/etc/dakia"
MINIMAL: dict[str, Any] = {"gateways": [{
    "name": "main",
    "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
    "upstreams": [{"name": "app", "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": 3000}}]}],
}]}


def settings_of(raw: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    config, _notices = validate(copy.deepcopy(raw), base_dir=BASE)
    return Settings.from_config(config), config


def schema_ref(ref: str) -> list[str]:
    return ref[2:].split("/")


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """A property schema with its local $refs followed (keeping its own default)."""
    root = load_schema()
    out = dict(schema)
    while "$ref" in out:
        ref = out.pop("$ref")
        target: Any = root
        for part in schema_ref(ref):
            target = target[part]
        out = {**target, **out}
    return out


# Model fields that are not the config key of the same name.
ALIASES = {
    ("upstream", "traffic_distribution_policy"): "node_selection_algorithm",
    ("upstream", "upstream_nodes"): "nodes",
    # The only source so far is etcd: its settings, or None for the file.
    ("top", "config_source"): "etcd",
}


def assert_defaults(obj: Any, schema: dict[str, Any], where: str, kind: str = "") -> set[str]:
    """Every property of ``schema`` with a default has that default in ``obj`` (recursing
    into mapping defaults such as ``limits: {}``); returns the config keys checked."""
    checked = set()
    for key, prop in resolved(schema)["properties"].items():
        prop = resolved(prop)
        if "default" not in prop:
            continue
        checked.add(key)
        default = prop["default"]
        field = ALIASES.get((kind, key), key)
        assert hasattr(obj, field), f"{where}.{key}: no field {field!r} in {type(obj).__name__}"
        value = getattr(obj, field)
        if isinstance(default, dict) and default == {} and "properties" in prop:
            if (kind, key) == ("upstream", "traffic_distribution_policy"):
                inner = resolved(prop["properties"]["node_selection_algorithm"])
                assert value == inner["default"], f"{where}.{key}"
            else:
                assert_defaults(value, prop, f"{where}.{key}")
            continue
        if key in ("pid_file", "state_dir"):
            default = resolve(default, BASE)
        if isinstance(value, frozenset):
            default = frozenset(default)
        assert value == default, f"{where}.{key}: model {value!r}, schema {default!r}"
        if default is not None and not isinstance(default, (str, bool)):
            assert isinstance(value, type(default)) or isinstance(value, float), (where, key)
    return checked


def test_settings_of_the_minimal_config_carry_every_schema_default() -> None:
    settings, _config = settings_of(MINIMAL)
    schema = load_schema()
    checked = assert_defaults(settings, schema, "", "top")
    assert {"workers", "graceful_timeout", "worker_timeout", "http_parser", "keep_versions",
            "pid_file", "state_dir", "access_log", "access_log_format", "error_log",
            "log_level", "upstream_keepalive_pool_size", "limits", "admin"} <= checked
    upstream = settings.gateways[0].upstreams[0]
    assert "timeouts" in assert_defaults(upstream, schema["$defs"]["upstream"], "upstream",
                                         "upstream")
    assert "weight" in assert_defaults(upstream.nodes[0], schema["$defs"]["upstreamNode"],
                                       "node")
    # Health checks default to none; given as {}, every one of its fields has its default.
    with_check = copy.deepcopy(MINIMAL)
    with_check["gateways"][0]["upstreams"][0]["health_check"] = {}
    check = settings_of(with_check)[0].gateways[0].upstreams[0].health_check
    assert isinstance(check, HealthCheckSettings)
    check_schema = resolved(schema["$defs"]["upstream"]["properties"]["health_check"])
    assert len(assert_defaults(check, check_schema, "health_check")) == 6


def test_every_model_field_is_a_config_key() -> None:
    """The reverse direction: no field the schema does not know (no setting born in code)."""
    schema = load_schema()
    defs = schema["$defs"]
    pairs = [
        (Settings, schema, "top"),
        (Limits, defs["limits"], ""),
        (GatewaySettings, defs["gateway"], ""),
        (UpstreamSettings, defs["upstream"], "upstream"),
        (NodeSettings, defs["upstreamNode"], ""),
        (HealthCheckSettings, resolved(defs["upstream"]["properties"]["health_check"]), ""),
    ]
    for cls, cls_schema, kind in pairs:
        keys = {ALIASES.get((kind, k), k) for k in resolved(cls_schema)["properties"]}
        extra = {f.name for f in dataclasses.fields(cls)} - keys - {"spec"}
        assert not extra, f"{cls.__name__}: fields {extra} are not config keys"


def test_no_default_is_written_in_code() -> None:
    """A config that was not normalised is refused, not completed from defaults in code."""
    with pytest.raises(KeyError):
        Settings.from_config({"gateways": []})
    config = settings_of(MINIMAL)[1]
    del config["limits"]["max_header_bytes"]
    with pytest.raises(KeyError):
        Settings.from_config(config)


def test_websocket_idle_is_typed_per_upstream() -> None:
    raw = copy.deepcopy(MINIMAL)
    raw["gateways"][0]["upstreams"][0]["timeouts"] = {"websocket_idle": 2}
    up = settings_of(raw)[0].gateway("main").upstream("app")
    assert up.timeouts.websocket_idle == 2.0 and isinstance(up.timeouts.websocket_idle, float)
    assert up.timeouts.idle == 60.0


def test_values_are_typed_and_taken_from_the_file() -> None:
    raw = copy.deepcopy(MINIMAL)
    raw.update(workers=3, graceful_timeout=5, access_log="off", access_log_format="json",
               limits={"max_body_bytes": 1000, "keepalive_timeout": 2})
    upstream = raw["gateways"][0]["upstreams"][0]
    upstream.update(timeouts={"read": 0.5}, retries=0, default=True,
                    traffic_distribution_policy={"node_selection_algorithm": "least_connection"})
    upstream["upstream_nodes"].append({"address": {"unix": "app.sock"}, "weight": 3})
    settings, _ = settings_of(raw)
    assert settings.workers == 3
    assert settings.graceful_timeout == 5.0 and isinstance(settings.graceful_timeout, float)
    assert (settings.access_log, settings.access_log_format) == ("off", "json")
    assert settings.limits == Limits(65536, 1000, 60.0, 60.0, 2.0, 60.0, 10000, 10.0)
    gateway = settings.gateway("main")
    assert gateway.bind_addresses == (("tcp", "127.0.0.1", 8080),)
    up = gateway.upstream("app")
    assert (up.timeouts.read, up.timeouts.connect, up.retries, up.default) == (0.5, 5.0, 0, True)
    assert up.timeouts.websocket_idle == 3600.0       # the schema's default
    assert up.node_selection_algorithm == "least_connection"
    assert [n.address for n in up.nodes] == [("tcp", "127.0.0.1", 3000),
                                             ("unix", "/etc/dakia/app.sock", 0)]
    assert up.nodes[1].weight == 3
    assert gateway.spec["name"] == "main"           # the router and interceptors' mapping


def test_a_stored_version_gives_the_same_settings() -> None:
    settings, config = settings_of(MINIMAL)
    assert Settings.from_config(json.loads(dump_normalised(config))) == settings


def test_settings_are_immutable_and_slotted() -> None:
    settings, _ = settings_of(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.graceful_timeout = 1.0      # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.limits.max_body_bytes = 1   # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.gateways[0].upstreams[0].timeouts.read = 1.0   # type: ignore[misc]
    for value in (settings, settings.limits, settings.gateways[0],
                  settings.gateways[0].upstreams[0], settings.gateways[0].upstreams[0].nodes[0]):
        assert not hasattr(value, "__dict__"), type(value).__name__
    assert isinstance(settings.gateways, tuple)
    assert isinstance(settings.gateways[0].upstreams[0].nodes, tuple)


def test_restart_only_changes_and_what_the_master_keeps() -> None:
    assert set(RESTART_ONLY) == {"pid_file", "state_dir"}
    running, _ = settings_of(MINIMAL)
    same, _ = settings_of(MINIMAL)
    assert restart_only_changes(running, same) == ()

    raw = copy.deepcopy(MINIMAL)
    raw.update(pid_file="/run/b.pid", limits={"max_body_bytes": 10}, workers=2)
    loaded, config = settings_of(raw)
    changes = restart_only_changes(running, loaded)
    assert changes == (NotApplied("pid_file", "/run/b.pid", running.pid_file),)
    assert changes[0].line() == (f"pid_file: changed in the file but {RESTART_HINT}; "
                                 f"still {running.pid_file}")
    assert changes[0].line() == ("pid_file: changed in the file but needs a restart "
                                 f"(dakia-master upgrade); still {running.pid_file}")
    kept = keeping_running(config, loaded, changes)
    # The running value is back in both the published mapping and the settings ...
    assert kept.pid_file == running.pid_file == config["pid_file"]
    assert Settings.from_config(config) == kept
    # ... and every other change is applied.
    assert kept.limits.max_body_bytes == 10 and kept.workers == 2


def test_state_dir_is_restart_only_too() -> None:
    running, _ = settings_of(MINIMAL)
    raw = copy.deepcopy(MINIMAL)
    raw.update(state_dir="/var/lib/other", pid_file="/run/other.pid")
    loaded, _ = settings_of(raw)
    assert [c.setting for c in restart_only_changes(running, loaded)] == ["pid_file",
                                                                           "state_dir"]


def test_not_applied_as_the_reload_result_carries_it() -> None:
    change = NotApplied("workers", 4, 2, "start --workers 2 fixes the count")
    assert change.as_dict() == {
        "setting": "workers", "wanted": 4, "running": 2,
        "reason": "start --workers 2 fixes the count",
        "line": "workers: changed in the file but start --workers 2 fixes the count; still 2"}
    json.dumps(change.as_dict())


def test_a_gateway_overrides_headers_with_underscores_and_path_normalization() -> None:
    """Defaults from the schema; a gateway's own value wins, field by field for
    path_normalization; a gateway that sets nothing has the top level's."""
    settings, _ = settings_of(MINIMAL)
    assert settings.headers_with_underscores == "drop"
    assert settings.path_normalization == PathNormalization(True, "keep", False)
    assert settings.gateways[0].path_normalization == settings.path_normalization
    raw = copy.deepcopy(MINIMAL)
    raw["headers_with_underscores"] = "reject"
    raw["path_normalization"] = {"merge_slashes": False, "forward_raw_path": True}
    second = copy.deepcopy(raw["gateways"][0])
    second["name"] = "own"
    second["bind_addresses"] = [{"host": "127.0.0.1", "port": 8081}]
    second["headers_with_underscores"] = "allow"
    second["path_normalization"] = {"escaped_slashes": "decode", "forward_raw_path": False}
    raw["gateways"].append(second)
    settings, _ = settings_of(raw)
    inherits, own = settings.gateways
    assert inherits.headers_with_underscores == "reject"
    assert inherits.path_normalization == PathNormalization(False, "keep", True)
    assert own.headers_with_underscores == "allow"
    assert own.path_normalization == PathNormalization(False, "decode", False)


@pytest.mark.parametrize(("key", "value"), [
    ("headers_with_underscores", "ignore"),
    ("path_normalization", {"escaped_slashes": "encode"}),
    ("path_normalization", {"merge_slash": True}),
])
def test_invalid_values_of_the_new_settings_are_config_errors(key: str, value: Any) -> None:
    raw = copy.deepcopy(MINIMAL)
    raw[key] = value
    with pytest.raises(ConfigError) as caught:
        validate(raw, base_dir=BASE)
    [error] = caught.value.errors
    assert error.startswith(key)
