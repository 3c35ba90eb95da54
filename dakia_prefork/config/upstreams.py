"""A gateway's upstreams: unique names, one default at most, nodes normalised.

Besides names and defaults this checks what the schema cannot: the balancing algorithm
exists, and a TLS node's files exist and load (a CA bundle that is not PEM, a key that does
not match its certificate), so ``dakia-master check`` and a reload refuse what a worker
could not connect with, instead of every worker failing at its first request.
"""
from __future__ import annotations

import os
from typing import Any

from ..routing.hosts import split_host_port
from .addresses import normalise_address
from .findings import Findings
from .location import child
from .paths import resolve

# The algorithms of ``balance.factory.BALANCERS`` (a unit test keeps the two equal: config/
# does not import the request path).
SUPPORTED_ALGORITHMS = ("round_robin", "weighted", "least_connection", "least_response_time",
                        "ip_hash", "url_hash", "random", "p2c")

# A wildcard address is something to bind, not to connect to; Dakia's sample uses
# 0.0.0.0 for nodes on this host, which is what connecting to it means on Linux.
_THIS_HOST = {"0.0.0.0": "127.0.0.1", "::": "::1"}

_TLS_FILES = ("ca_file", "client_cert", "client_key")


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
                f"unknown node selection algorithm {algorithm!r} "
                f"(one of {', '.join(SUPPORTED_ALGORITHMS)})")
        check = upstream["health_check"]
        if check is not None and check["timeout"] > check["interval"]:
            findings.notice(child(child(upstream_path, "health_check"), "timeout"),
                            f"longer than the interval ({check['interval']}s): a node is "
                            f"checked at most once per timeout")
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
    node["weight"] = int(node["weight"])
    for key in _TLS_FILES:
        if node[key] is not None:
            node[key] = resolve(node[key], base_dir)
    if node["sni"] is not None:
        sni = split_host_port(node["sni"])
        if sni is None or sni[1] is not None:
            findings.error(child(path, "sni"), f"{node['sni']!r} is not a host name")
            return
        node["sni"] = sni[0]
    if not node["tls"]:
        for key in ("sni", *_TLS_FILES):
            if node[key] is not None:
                findings.notice(child(path, key), "ignored: the node does not use TLS "
                                                  "(tls: false)")
        return
    _check_tls_node(node, address, path, findings)


def _check_tls_node(node: dict[str, Any], address: dict[str, Any] | None, path: str,
                    findings: Findings) -> None:
    if node["client_key"] is not None and node["client_cert"] is None:
        findings.error(child(path, "client_key"), "client_key needs client_cert")
        return
    if (node["tls_verify"] and node["sni"] is None and address is not None
            and "unix" in address):
        findings.error(child(path, "sni"), "a TLS node on a unix socket needs sni (the name "
                                           "to verify), or tls_verify: false")
    missing = False
    for key in _TLS_FILES:
        if node[key] is not None and not os.path.isfile(node[key]):
            findings.error(child(path, key), f"no such file: {node[key]}")
            missing = True
    if missing:
        return
    import ssl            # here, not with config/: it loads socket, and most nodes are plain
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if node["tls_verify"] and node["ca_file"] is not None:
            context.load_verify_locations(cafile=node["ca_file"])
    except (OSError, ssl.SSLError) as exc:
        findings.error(child(path, "ca_file"), f"cannot load the CA bundle: {_reason(exc)}")
        return
    if node["client_cert"] is not None:
        try:
            context.load_cert_chain(node["client_cert"], node["client_key"])
        except (OSError, ssl.SSLError) as exc:
            findings.error(child(path, "client_cert"),
                           f"cannot load the client certificate and key: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    import ssl            # loaded already: only TLS checks get here
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc.strerror if exc.strerror else exc)
