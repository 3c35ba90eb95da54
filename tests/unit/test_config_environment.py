"""``${ENV_NAME}`` substitution in config values (dakia_prefork/config/environment.py)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dakia_prefork.config import ConfigError, dump_normalised, load, validate
from dakia_prefork.config.environment import substitute

GATEWAY: dict[str, Any] = {
    "name": "main",
    "bind_addresses": [{"host": "${NODE_HOST}", "port": 8080}],
    "upstreams": [{"name": "app", "upstream_nodes": [
        {"address": {"host": "${APP_HOST}", "port": 3000}}]}],
}


def run(document: Any, environ: dict[str, str]) -> tuple[Any, list[str]]:
    result, problems = substitute(document, environ)
    return result, [f"{path}: {message}" for path, message in problems]


@pytest.mark.parametrize("text, expected", [
    ("${A}", "1"),
    ("x${A}y${B}z", "x1y2z"),
    ("${A}${A}", "11"),
    ("$${A}", "${A}"),
    ("$${id}", "$${id}"),
    ("$$${A}", "$${A}"),
    ("no reference", "no reference"),
    ("${unclosed", "${unclosed"),
    ("$A {B}", "$A {B}"),
    ("", ""),
])
def test_references_in_strings(text: str, expected: str) -> None:
    assert run(text, {"A": "1", "B": "2"}) == (expected, [])


def test_values_are_substituted_everywhere_and_keys_never() -> None:
    document = {"${A}": ["${A}", {"k": "${B}"}, 5, None, True, 1.5], "n": "${B}"}
    result, errors = run(document, {"A": "a", "B": "b"})
    assert errors == []
    assert result == {"${A}": ["a", {"k": "b"}, 5, None, True, 1.5], "n": "b"}


def test_the_input_document_is_not_changed() -> None:
    document = {"a": ["${A}"]}
    before = copy.deepcopy(document)
    run(document, {"A": "x"})
    assert document == before


def test_an_unset_name_is_an_error_at_its_path_and_every_one_is_reported() -> None:
    raw = {"gateways": [copy.deepcopy(GATEWAY)]}
    with pytest.raises(ConfigError) as info:
        validate(raw, base_dir="/", environ={})
    assert info.value.errors == [
        "gateways[0].bind_addresses[0].host: ${NODE_HOST}: the environment variable "
        "NODE_HOST is not set",
        "gateways[0].upstreams[0].upstream_nodes[0].address.host: ${APP_HOST}: the "
        "environment variable APP_HOST is not set",
    ]


@pytest.mark.parametrize("text", ["${1}", "${id}", "${Name}", "${A-B}", "${ A}", "${}",
                                  "/v2/users/${id}/${2}"])
def test_what_is_not_an_upper_case_name_is_left_for_the_value_s_own_syntax(text: str) -> None:
    assert run(text, {"id": "x", "Name": "x", "1": "x"}) == (text, [])


def test_an_empty_value_is_a_value() -> None:
    assert run("a${E}b", {"E": ""}) == ("ab", [])


def test_substitution_errors_come_with_the_schema_errors() -> None:
    raw = {"gateways": [copy.deepcopy(GATEWAY)], "workers": "many"}
    with pytest.raises(ConfigError) as info:
        validate(raw, base_dir="/", environ={"NODE_HOST": "127.0.0.1"})
    assert [line.split(":")[0] for line in info.value.errors] == [
        "gateways[0].upstreams[0].upstream_nodes[0].address.host", "workers"]


def test_a_substituted_value_is_validated_like_a_written_one() -> None:
    raw = {"gateways": [copy.deepcopy(GATEWAY)]}
    raw["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["address"]["port"] = 3000
    with pytest.raises(ConfigError) as info:
        validate(raw, base_dir="/", environ={"NODE_HOST": "not a host!", "APP_HOST": "h"})
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("gateways[0].bind_addresses[0]")


def test_a_loaded_file_takes_the_environment_and_its_version_is_stable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"gateways": [GATEWAY], "pid_file": "$${LITERAL}.pid"}))
    monkeypatch.setenv("NODE_HOST", "127.0.0.2")
    monkeypatch.setenv("APP_HOST", "10.1.2.3")
    config, _ = load(str(path))
    assert config["gateways"][0]["bind_addresses"][0]["host"] == "127.0.0.2"
    node = config["gateways"][0]["upstreams"][0]["upstream_nodes"][0]
    assert node["address"]["host"] == "10.1.2.3"
    assert config["pid_file"].endswith("/${LITERAL}.pid")
    # A stored version is validated without the environment and comes back unchanged.
    again, _ = validate(json.loads(dump_normalised(config)), base_dir="/")
    assert dump_normalised(again) == dump_normalised(config)
