"""The routing state of one config version, built off to the side and swapped in whole.

A ``Runtime`` is immutable once built: a request holds the one it started with, so a reload
that swaps ``WorkerContext.runtime`` never changes the rules under a request in flight.
"""
from __future__ import annotations

from typing import Any

from ..balance import RoundRobin
from ..http.upstream import Address, Node
from ..interceptors import Chain, build_chain
from ..interceptors.resources import Resources
from ..routing.router import GatewayRouter
from ..shm.counters import CounterTable


def node_address(address: dict[str, Any]) -> Address:
    if "unix" in address:
        return ("unix", address["unix"], 0)
    return ("tcp", address["host"], int(address["port"]))


class UpstreamRuntime:
    __slots__ = ("name", "nodes", "balancer", "connect_timeout", "read_timeout",
                 "write_timeout", "idle_timeout")

    def __init__(self, gateway: str, spec: dict[str, Any], counters: CounterTable | None) -> None:
        self.name = spec["name"]
        self.nodes = [Node(node_address(n["address"]), n.get("weight", 1))
                      for n in spec["upstream_nodes"]]
        self.balancer = RoundRobin(f"{gateway}/{self.name}", self.nodes, counters)
        timeouts = spec.get("timeouts", {})
        self.connect_timeout = float(timeouts.get("connect", 5))
        self.read_timeout = float(timeouts.get("read", 60))
        self.write_timeout = float(timeouts.get("write", 60))
        self.idle_timeout = float(timeouts.get("idle", 60))


class GatewayRuntime:
    __slots__ = ("name", "router", "hosts", "upstreams", "interceptors")

    def __init__(self, index: int, spec: dict[str, Any], counters: CounterTable | None,
                 resources: Resources | None = None) -> None:
        self.name = spec["name"]
        self.router = GatewayRouter(spec)
        self.hosts = self.router.hosts
        self.upstreams = {u["name"]: UpstreamRuntime(self.name, u, counters)
                          for u in spec["upstreams"]}
        self.interceptors: Chain | None = build_chain(spec, self.router.filters,
                                                      f"gateways[{index}]", resources)


class Runtime:
    __slots__ = ("version", "gateways")

    def __init__(self, version: int, config: dict[str, Any],
                 counters: CounterTable | None, resources: Resources | None = None) -> None:
        self.version = version
        self.gateways = {g["name"]: GatewayRuntime(i, g, counters, resources)
                         for i, g in enumerate(config["gateways"])}
