"""Interceptor configs when the config loads: schema and semantic errors with full paths,
normalisation (no plaintext secret survives), and what ``dakia-master check`` prints."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dakia_prefork.config import ConfigError, dump_normalised, validate
from dakia_prefork.master.checks import runtime_errors

ROOT = Path(__file__).parents[2]
GATEWAY: dict[str, Any] = {
    "name": "main",
    "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
    "upstreams": [{"name": "app", "default": True, "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": 3000}}]}],
}


def config_with(*interceptors: dict[str, Any], **gateway: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GATEWAY)
    spec.update(gateway, interceptors=list(interceptors))
    return {"gateways": [spec]}


def errors_of(raw: dict[str, Any], base_dir: str = "/") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(raw, base_dir=base_dir)
    return caught.value.errors


@pytest.mark.parametrize("interceptor,error", [
    ({"name": "basic_auth", "config": {"realm": 'a"b', "users": []}},
     "gateways[0].interceptors[0].config.realm: a realm is printable ASCII without quotes "
     "or backslashes, got 'a\"b'"),
    ({"name": "basic_auth", "config": {"relam": "x"}},
     "gateways[0].interceptors[0].config.relam: unknown key; did you mean 'realm'?"),
    ({"name": "basic_auth"}, "gateways[0].interceptors[0].config: required key is missing"),
    ({"name": "key_auth", "config": {"keys": [{"name": "a", "key": "short"}]}},
     "gateways[0].interceptors[0].config.keys[0].key: an API key should be at least 16 "
     "characters (hashpw key makes one), got 'short'"),
    ({"name": "server_version", "rewrite": {"header.x": "y"}},
     "gateways[0].interceptors[0].rewrite: this interceptor takes no such map (its settings "
     "go under config), got {'header.x': 'y'}"),
    ({"name": "response_rewrite", "rewrite": {"status": 304}},
     "gateways[0].interceptors[0].rewrite.status: a rewritten status cannot be 204 or 304 "
     "(the upstream's body still follows), got 304"),
    ({"name": "request_rewrite", "rewrite": {"bogus": 1}},
     "gateways[0].interceptors[0].rewrite: not a key of a request rewrite map (path, "
     "header.<name>, query.<name>), got 'bogus'"),
    ({"name": "short_circuit", "response": {"status": 700}},
     "gateways[0].interceptors[0].response.status: 700 is greater than the maximum of 599"),
    ({"name": "cors", "config": {"allow_origins": []}},
     "gateways[0].interceptors[0].config.allow_origins: [] should be non-empty"),
    ({"name": "request_id", "config": {"header": "x y"}},
     "gateways[0].interceptors[0].config.header: not a header name (letters, digits and "
     "!#$%&'*+.^_`|~-), got 'x y'"),
])
def test_schema_errors_carry_full_paths(interceptor: dict[str, Any], error: str) -> None:
    assert error in errors_of(config_with(interceptor))


def test_semantic_errors_carry_full_paths_and_all_are_reported(tmp_path: Path) -> None:
    raw = config_with(
        {"name": "request_id"},
        {"name": "basic_auth", "enabled": False,
         "config": {"users": [{"username": "a", "password_hash": "nope"}],
                    "htpasswd_file": "missing.htpasswd"}},
        {"name": "request_rewrite", "config": {"path_regex": {"pattern": "^/(a)",
                                                              "replacement": "/$2"},
                                               "set_headers": {"Content-Length": "1"}}},
        {"name": "ip_restriction", "config": {"allow": ["10.0.0.1/8"], "deny": ["bad"]}},
        {"name": "cors", "config": {"allow_origins": ["*"], "allow_credentials": True}},
    )
    assert errors_of(raw, str(tmp_path)) == [
        f"gateways[0].interceptors[1].config.htpasswd_file: cannot read "
        f"{tmp_path}/missing.htpasswd: [Errno 2] No such file or directory: "
        f"'{tmp_path}/missing.htpasswd'",
        "gateways[0].interceptors[1].config.users[0].password_hash: unsupported password "
        "hash format (expected $scrypt$, $pbkdf2-sha256$, $pbkdf2-sha512$, bcrypt "
        "($2b$/$2y$), {SHA} or $apr1$)",
        "gateways[0].interceptors[2].config.path_regex.replacement: $2 but the pattern has "
        "1 group(s)",
        "gateways[0].interceptors[2].config.set_headers.Content-Length: header "
        "'Content-Length' is hop-by-hop or framing: the gateway sets it",
        "gateways[0].interceptors[3].config.allow[0]: 10.0.0.1/8 has host bits set; did you "
        "mean 10.0.0.0/8?",
        "gateways[0].interceptors[3].config.deny[0]: 'bad' does not appear to be an IPv4 or "
        "IPv6 network",
        "gateways[0].interceptors[4].config.allow_credentials: browsers refuse credentials "
        "with a '*' origin; list the origins",
    ]


def test_plaintext_secrets_are_hashed_and_normalisation_is_stable(tmp_path: Path) -> None:
    (tmp_path / "users.htpasswd").write_text("ann:$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0\n")
    raw = config_with(
        {"name": "basic_auth", "config": {"username": "dakia", "password": "hunter22",
                                          "htpasswd_file": "users.htpasswd"}},
        {"name": "key_auth", "config": {"keys": [{"name": "ci", "key": "0123456789abcdefXYZ"}]}},
    )
    config, notices = validate(raw, base_dir=str(tmp_path))
    text = dump_normalised(config)
    assert "hunter22" not in text and "0123456789abcdefXYZ" not in text
    basic, keys = config["gateways"][0]["interceptors"]
    assert basic["config"]["htpasswd_file"] == str(tmp_path / "users.htpasswd")
    assert basic["config"]["users"][0]["password_hash"].startswith("$scrypt$")
    assert keys["config"]["keys"][0]["key_hash"].startswith("sha256:")
    assert raw["gateways"][0]["interceptors"][0]["config"]["password"] == "hunter22"  # caller's
    again, notices_again = validate(copy.deepcopy(config), base_dir="/elsewhere")
    assert dump_normalised(again) == text and notices_again == []
    assert runtime_errors(config) == []


def test_dakia_sample_passes_and_unimplemented_ones_are_only_warned() -> None:
    config, _ = validate(yaml.safe_load((ROOT / "tests/unit/fixtures/dakia-config.sample.yaml")
                                        .read_text()), base_dir="/")
    problems = runtime_errors(config)
    assert problems == []        # use_file's root (/home/static) may not exist: 404s then


def test_check_command_prints_interceptor_errors(tmp_path: Path) -> None:
    path = tmp_path / "dakia.yaml"
    raw = config_with({"name": "key_auth", "config": {"keys": [{"name": "a",
                                                                "key_hash": "md5:x"}]}})
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert ("gateways[0].interceptors[0].config.keys[0].key_hash: a key hash is 'sha256:' "
            "and 64 lower-case hex digits") in done.stderr
