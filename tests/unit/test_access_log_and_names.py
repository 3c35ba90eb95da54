"""Router names (metrics labels), the metrics setting and the access log's formats: what
``check`` accepts and refuses, and the lines each format writes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dakia_prefork.config import validate
from dakia_prefork.config.errors import ConfigError
from dakia_prefork.config.model import Settings
from dakia_prefork.message.heads import RequestHead
from dakia_prefork.worker.accesslog import AccessLog


def _raw(routers: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {**top, "gateways": [{
        "name": "g",
        "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
        "upstreams": [{"name": "app", "default": True,
                       "upstream_nodes": [{"address": {"host": "10.0.0.1", "port": 80}}]}],
        "routers": routers or [],
        "filters": [{"name": "a", "path": "/a"}, {"name": "b", "path": "/b"}],
    }]}


def _errors(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(raw, base_dir="/")
    return caught.value.errors


def test_router_names_are_checked() -> None:
    config, _ = validate(_raw([{"upstream": "app", "filter": "a", "name": "api.v1"},
                               {"upstream": "app", "filter": "b"}]), base_dir="/")
    assert config["gateways"][0]["routers"][0]["name"] == "api.v1"
    assert "name" not in config["gateways"][0]["routers"][1]
    assert _errors(_raw([{"upstream": "app", "filter": "a", "name": "x"},
                         {"upstream": "app", "filter": "b", "name": "x"}])) == [
        "gateways[0].routers[1].name: duplicate router name 'x' "
        "(also gateways[0].routers[0].name)"]
    for reserved in ("1", "-"):
        [error] = _errors(_raw([{"upstream": "app", "filter": "a", "name": reserved}]))
        assert error.startswith(f"gateways[0].routers[0].name: '{reserved}' is reserved")
    [error] = _errors(_raw([{"upstream": "app", "name": "/api/users"}]))
    assert error == "gateways[0].routers[0].name: 1 to 64 of A-Z a-z 0-9 _ . -, got '/api/users'"


def test_metrics_setting_and_its_default() -> None:
    config, _ = validate(_raw(), base_dir="/")
    assert Settings.from_config(config).metrics.enabled is True
    config, _ = validate(_raw(metrics={"enabled": False}), base_dir="/")
    assert Settings.from_config(config).metrics.enabled is False
    [error] = _errors(_raw(metrics={"enabled": False, "port": 9}))
    assert error.startswith("metrics.port: unknown key")


def test_access_log_formats_and_fields_are_checked() -> None:
    for good in ("combined", "json", "$remote_addr $status $$ $request_time"):
        validate(_raw(access_log_format=good), base_dir="/")
    [error] = _errors(_raw(access_log_format="$remote_addr $upstream_ms $nope"))
    assert error.startswith("access_log_format: unknown field(s) $upstream_ms, $nope (known: ")
    [error] = _errors(_raw(access_log_format="jsn"))
    assert error.startswith("access_log_format: expected combined, json or a template")
    config, _ = validate(_raw(access_log_format="json",
                              access_log_fields=["status", "request_id"]), base_dir="/")
    assert Settings.from_config(config).access_log_fields == ("status", "request_id")
    [error] = _errors(_raw(access_log_fields=["status", "bytes"]))
    assert error.startswith("access_log_fields[1]: unknown field 'bytes'")


# -- the lines -------------------------------------------------------------------------------
@dataclass
class _Ctx:
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    ctx: _Ctx


@dataclass
class _Request:
    host: str


@dataclass
class _Exchange:
    head: RequestHead
    client: str = "192.0.2.7"
    request: Any = None
    node_label: str = ""
    run_: Any = None


def _head(*headers: tuple[bytes, bytes]) -> RequestHead:
    return RequestHead(b"POST", b"/api/x?y=1", b"1.1", list(headers), 3, False, True, False)


def _lines(tmp_path, fmt: str, exchange: _Exchange, upstream: float,
           fields: tuple[str, ...] | None = None) -> list[str]:
    path = str(tmp_path / f"access-{len(list(tmp_path.iterdir()))}.log")
    log = AccessLog(path, fmt, fields)
    log.write(exchange, 201, 12, 0.01234, upstream, 3)
    log.close()
    with open(path) as f:
        return f.read().splitlines()


def test_combined_appends_request_id_upstream_and_bytes(tmp_path) -> None:
    proxied = _Exchange(_head((b"user-agent", b"curl/8"), (b"x-request-id", b"client-1")),
                        request=_Request("example.com"), node_label="10.0.0.1:80",
                        run_=_Run(_Ctx({"request_id": "gw-7"})))
    [line] = _lines(tmp_path, "combined", proxied, 0.0104)
    assert line.startswith('192.0.2.7 - - [')
    assert line.endswith('] "POST /api/x?y=1 HTTP/1.1" 201 12 "-" "curl/8" '
                         '0.012 gw-7 10.0.0.1:80 0.010 3')
    # No interceptor id: the client's; no upstream attempt: "-".
    local = _Exchange(_head((b"x-request-id", b"client-1")))
    [line] = _lines(tmp_path, "combined", local, -1.0)
    assert line.endswith('"-" "-" 0.012 client-1 - - 3')
    [line] = _lines(tmp_path, "combined", _Exchange(_head()), -1.0)
    assert line.endswith('0.012 - - - 3')


def test_json_has_every_field_or_those_chosen(tmp_path) -> None:
    exchange = _Exchange(_head(), request=_Request("example.com"), node_label="10.0.0.1:80",
                         run_=_Run(_Ctx({"request_id": "gw-7"})))
    [line] = _lines(tmp_path, "json", exchange, 0.0104)
    record = json.loads(line)
    assert {k: record[k] for k in ("remote_addr", "host", "method", "target", "protocol",
                                   "request", "status", "body_bytes_sent", "request_bytes",
                                   "request_id", "upstream_addr", "upstream_time",
                                   "request_time")} == {
        "remote_addr": "192.0.2.7", "host": "example.com", "method": "POST",
        "target": "/api/x?y=1", "protocol": "HTTP/1.1", "request": "POST /api/x?y=1 HTTP/1.1",
        "status": 201, "body_bytes_sent": 12, "request_bytes": 3, "request_id": "gw-7",
        "upstream_addr": "10.0.0.1:80", "upstream_time": 0.01, "request_time": 0.012}
    [line] = _lines(tmp_path, "json", _Exchange(_head()), -1.0,
                    ("status", "upstream_time", "upstream_addr"))
    assert line == '{"status":201,"upstream_time":null,"upstream_addr":"-"}'


def test_a_template_writes_its_fields(tmp_path) -> None:
    exchange = _Exchange(_head(), node_label="unix:/run/app.sock")
    [line] = _lines(tmp_path, "$status $$ [$upstream_addr] $upstream_time/$request_time",
                    exchange, 0.5)
    assert line == "201 $ [unix:/run/app.sock] 0.500/0.012"
