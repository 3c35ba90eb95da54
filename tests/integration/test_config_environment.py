"""``${ENV_NAME}`` in a config, through the real ``dakia-master``: the master's environment
fills the values at start, and ``check`` names every unset variable with its location."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
import yaml

from .harness import ROOT, node


def test_values_come_from_the_master_s_environment(monkeypatch: pytest.MonkeyPatch,
                                                   upstreams, gateways):
    up = upstreams(name="app")
    monkeypatch.setenv("DAKIA_TEST_APP_HOST", "127.0.0.1")
    monkeypatch.setenv("DAKIA_TEST_SECRET", "s3cret")
    nodes = [node(up.port, host="${DAKIA_TEST_APP_HOST}")]
    gw = gateways([{"name": "app", "upstream_nodes": nodes}],
                  gateway={"interceptors": [{"name": "request_rewrite", "config": {
                      "path_regex": {"pattern": "^/users/(?P<id>\\d+)$",
                                     "replacement": "/v2/users/${id}"},
                      "set_headers": {"Authorization": "Bearer ${DAKIA_TEST_SECRET}",
                                      "X-Literal": "$${DAKIA_TEST_SECRET}"}}}]})
    response = requests.get(f"{gw.url}/users/42", timeout=5)
    assert response.status_code == 200
    seen = up.received[-1]
    # The regex group keeps its own ${name} syntax; the upper-case names are substituted.
    assert seen.target == "/v2/users/42"
    assert seen.header("authorization") == "Bearer s3cret"
    assert seen.header("x-literal") == "${DAKIA_TEST_SECRET}"


def test_check_names_every_unset_variable(tmp_path):
    config = {"gateways": [{
        "name": "main",
        "bind_addresses": [{"host": "${DAKIA_TEST_BIND_HOST}", "port": 8080}],
        "upstreams": [{"name": "app", "default": True, "upstream_nodes": [
            {"address": {"host": "${DAKIA_TEST_APP_HOST}", "port": 3000}}]}],
    }]}
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(config))
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("DAKIA_TEST_")}
    check = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c",
                            str(path)], capture_output=True, text=True, timeout=20, cwd=ROOT,
                           env=environ)
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "gateways[0].bind_addresses[0].host: ${DAKIA_TEST_BIND_HOST}: the environment "
        "variable DAKIA_TEST_BIND_HOST is not set",
        "gateways[0].upstreams[0].upstream_nodes[0].address.host: ${DAKIA_TEST_APP_HOST}: "
        "the environment variable DAKIA_TEST_APP_HOST is not set",
        f"{path}: configuration is invalid"]
    environ.update(DAKIA_TEST_BIND_HOST="127.0.0.1", DAKIA_TEST_APP_HOST="localhost")
    check = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c",
                            str(path)], capture_output=True, text=True, timeout=20, cwd=ROOT,
                           env=environ)
    assert check.returncode == 0, check.stderr
