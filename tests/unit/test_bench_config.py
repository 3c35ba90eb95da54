"""tools/bench: the gateway configs of the scenarios, valid for the gateway (no processes)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "bench"))

from bench_config import (GATEWAY_SCENARIOS, gateway_config,  # noqa: E402
                          scenario_request)
from bench_procs import parse_vm_rss_mb  # noqa: E402

from dakia_prefork.config import validate  # noqa: E402


@pytest.mark.parametrize("scenario", GATEWAY_SCENARIOS)
@pytest.mark.parametrize("engine", ["h11", "httptools"])
def test_every_scenario_config_is_valid(scenario: str, engine: str, tmp_path: Path) -> None:
    config = gateway_config(scenario, engine, 18080, 18081, str(tmp_path))
    normalised, _ = validate(config, base_dir=str(tmp_path))
    assert normalised["workers"] == 1
    assert normalised["http_parser"] == engine
    assert config["access_log"] == "off"


@pytest.mark.parametrize("metrics", [True, False])
def test_metrics_can_be_turned_on_and_off(metrics: bool, tmp_path: Path) -> None:
    config = gateway_config("chain", "httptools", 1, 2, str(tmp_path), metrics=metrics)
    normalised, _ = validate(config, base_dir=str(tmp_path))
    assert normalised["metrics"] == {"enabled": metrics}
    assert "metrics" not in gateway_config("chain", "httptools", 1, 2, str(tmp_path))


def test_each_gateway_has_its_own_files(tmp_path: Path) -> None:
    configs = [gateway_config(s, e, 1, 2, str(tmp_path))
               for s in GATEWAY_SCENARIOS for e in ("h11", "httptools")]
    for key in ("pid_file", "state_dir", "error_log"):
        assert len({c[key] for c in configs}) == len(configs)


def test_bare_has_one_route_and_no_interceptors() -> None:
    gateway = gateway_config("bare", "h11", 1, 2, "/tmp")["gateways"][0]
    assert gateway["routers"] == [{"upstream": "up"}]
    assert not gateway.get("interceptors")


def test_chain_is_the_default_chain_with_a_bucket_that_never_empties() -> None:
    gateway = gateway_config("chain", "h11", 1, 2, "/tmp")["gateways"][0]
    assert [i["name"] for i in gateway["interceptors"]] == [
        "request_id", "server_version", "rate_limiter"]
    limit = gateway["interceptors"][2]["config"]
    assert limit["policy"] == "local"
    # Refilled to full every interval: more than any request rate could take.
    assert limit["refill_rate"] >= limit["capacity"] >= 10**9
    assert limit["refill_interval"] <= 1000


def test_routes1000_request_matches_only_the_last_route() -> None:
    gateway = gateway_config("routes1000", "h11", 1, 2, "/tmp")["gateways"][0]
    assert len(gateway["downstreams"]) == len(gateway["routers"]) == 1000
    filters = {f["name"]: f for f in gateway["filters"]}
    request = scenario_request("routes1000")
    assert request.host in {d["host"] for d in gateway["downstreams"]}
    matching = [i for i, router in enumerate(gateway["routers"])
                if filters[router["filter"]]["host"] == request.host
                and request.path.startswith(filters[router["filter"]]["path"]["$starts_with"])]
    assert matching == [999]


def test_other_scenarios_send_get_slash_to_the_address() -> None:
    assert scenario_request("bare").path == "/" and scenario_request("bare").host is None


def test_vm_rss_is_read_in_mib() -> None:
    status = "Name:\tpython\nVmHWM:\t  99999 kB\nVmRSS:\t   37376 kB\nThreads:\t1\n"
    assert parse_vm_rss_mb(status) == 36.5
    with pytest.raises(ValueError):
        parse_vm_rss_mb("Name:\tpython\n")
