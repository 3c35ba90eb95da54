"""A gateway's upstreams: unique names, one default at most, nodes normalised."""
from __future__ import annotations

from typing import Any

from .addresses import normalise_address
from .findings import Findings
from .location import child

SUPPORTED_ALGORITHMS = ("round_robin",)

# A wildcard address is something to bind, not to connect to; Dakia's sample uses
# 0.0.0.0 for nodes on this host, which is what connecting to it means on Linux.
_THIS_HOST = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def normalise_upstreams(upstreams: list[dict[str, Any]], path: str, base_dir: str,
                        findings: Findings) -> None:
    """Check and normalise, in place, the defaults-filled ``upstreams`` at ``path``."""
    first_by_name: dict[str, str] = {}
    default_seen: tuple[str, str] | None = None
    for index, upstream in enumerate(upstreams):
        upstream_path = child(path, index)
        name = upstream["name"]
        if name in first_by_name:
            findings.error(child(upstream_path, "name"),
                           f"duplicate upstream name {name!r} (also {first_by_name[name]})")
        else:
            first_by_name[name] = child(upstream_path, "name")
        if upstream["default"]:
            if default_seen is not None:
                findings.error(child(upstream_path, "default"),
                               f"only one upstream may be the default; {default_seen[0]!r} "
                               f"({default_seen[1]}) already is")
            else:
                default_seen = (name, upstream_path)
        algorithm = upstream["traffic_distribution_policy"]["node_selection_algorithm"]
        if algorithm not in SUPPORTED_ALGORITHMS:
            findings.error(
                child(child(upstream_path, "traffic_distribution_policy"),
                      "node_selection_algorithm"),
                f"node selection algorithm {algorithm!r} is not supported yet "
                f"(supported: {', '.join(SUPPORTED_ALGORITHMS)})")
        nodes_path = child(upstream_path, "upstream_nodes")
        for node_index, node in enumerate(upstream["upstream_nodes"]):
            _normalise_node(node, child(nodes_path, node_index), base_dir, findings)


def _normalise_node(node: dict[str, Any], path: str, base_dir: str,
                    findings: Findings) -> None:
    address_path = child(path, "address")
    address = normalise_address(node["address"], address_path, base_dir, findings)
    if address is not None:
        replacement = _THIS_HOST.get(address.get("host", ""))
        if replacement is not None:
            findings.notice(child(address_path, "host"),
                            f"{address['host']} is an address to bind, not to connect to; "
                            f"connecting to {replacement} (this host)")
            address["host"] = replacement
        node["address"] = address
    if node["tls"]:
        findings.error(child(path, "tls"), "upstream TLS is not supported yet")
    node["weight"] = int(node["weight"])
