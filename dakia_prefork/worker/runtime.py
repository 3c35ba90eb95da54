"""The routing state of one config version, built off to the side and swapped in whole.

A ``Runtime`` is immutable once built: a request holds the one it started with, so a reload
that swaps ``WorkerContext.runtime`` never changes the rules under a request in flight.
"""
from __future__ import annotations

from typing import Any

from ..balance import Balancer, PassiveHealth, make_balancer
from ..http.upstream import DEFAULT_RESOLVE_TTL, Address, Node, tls_for
from ..interceptors import Chain, build_chain
from ..interceptors.resources import Resources
from ..routing.router import GatewayRouter
from ..shm.counters import CounterTable
from ..shm.nodestats import NodeStats


def node_address(address: dict[str, Any]) -> Address:
    if "unix" in address:
        return ("unix", address["unix"], 0)
    return ("tcp", address["host"], int(address["port"]))


def build_nodes(spec: dict[str, Any]) -> list[Node]:
    """The nodes of one upstream's config, TLS contexts and all (the health checker builds
    its own the same way)."""
    ttl = float(spec.get("resolve_ttl", DEFAULT_RESOLVE_TTL))
    nodes = []
    for entry in spec["upstream_nodes"]:
        address = node_address(entry["address"])
        tls = None
        if entry.get("tls"):
            tls = tls_for(address, entry.get("sni"), entry.get("tls_verify", True),
                          entry.get("ca_file"), entry.get("client_cert"),
                          entry.get("client_key"))
        nodes.append(Node(address, entry.get("weight", 1), tls, ttl))
    return nodes


class UpstreamRuntime:
    __slots__ = ("name", "nodes", "balancer", "key_kind", "connect_timeout", "read_timeout",
                 "write_timeout", "idle_timeout", "retries")

    def __init__(self, gateway: str, spec: dict[str, Any], counters: CounterTable | None,
                 node_stats: NodeStats | None = None) -> None:
        self.name = spec["name"]
        self.nodes = build_nodes(spec)
        algorithm = spec.get("traffic_distribution_policy", {}).get(
            "node_selection_algorithm", "round_robin")
        passive = spec.get("passive_health", {})
        self.balancer: Balancer = make_balancer(
            algorithm, f"{gateway}/{self.name}", self.nodes, counters, node_stats,
            passive=PassiveHealth(int(passive.get("max_failures", 3)),
                                  float(passive.get("eject_seconds", 10))),
            active_health=spec.get("health_check") is not None)
        self.key_kind = self.balancer.key_kind
        timeouts = spec.get("timeouts", {})
        self.connect_timeout = float(timeouts.get("connect", 5))
        self.read_timeout = float(timeouts.get("read", 60))
        self.write_timeout = float(timeouts.get("write", 60))
        self.idle_timeout = float(timeouts.get("idle", 60))
        self.retries = int(spec.get("retries", 1))


class GatewayRuntime:
    __slots__ = ("name", "router", "hosts", "upstreams", "interceptors")

    def __init__(self, index: int, spec: dict[str, Any], counters: CounterTable | None,
                 resources: Resources | None = None,
                 node_stats: NodeStats | None = None) -> None:
        self.name = spec["name"]
        self.router = GatewayRouter(spec)
        self.hosts = self.router.hosts
        self.upstreams = {u["name"]: UpstreamRuntime(self.name, u, counters, node_stats)
                          for u in spec["upstreams"]}
        self.interceptors: Chain | None = build_chain(spec, self.router.filters,
                                                      f"gateways[{index}]", resources)


class Runtime:
    __slots__ = ("version", "gateways")

    def __init__(self, version: int, config: dict[str, Any],
                 counters: CounterTable | None, resources: Resources | None = None,
                 node_stats: NodeStats | None = None) -> None:
        self.version = version
        self.gateways = {g["name"]: GatewayRuntime(i, g, counters, resources, node_stats)
                         for i, g in enumerate(config["gateways"])}
