"""Every listening address is bound once: across gateways, and by the admin listener; and a
gateway's ``controller`` has an admin listener to send its requests to.

Addresses compare in their normalised form, so ``[::1]`` and ``::1`` collide. Distinct
addresses on one port (``0.0.0.0:80`` and ``127.0.0.1:80``) are allowed: with
SO_REUSEPORT the kernel hands each connection to the most specific listener.
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from ..routing.hosts import split_host_port
from .addresses import describe_address
from .findings import Findings
from .location import child
from .model import ADMIN_UPSTREAM, has_controller


def check_unique_listeners(config: dict[str, Any], findings: Findings,
                           skip: AbstractSet[int] = frozenset()) -> None:
    """Record an error for each address bound a second time, naming the first binder;
    the gateways whose indices are in ``skip`` (their addresses or names failed the
    schema) are left out."""
    first: dict[str, tuple[str, str]] = {}
    for gateway_index, gateway in enumerate(config["gateways"]):
        if gateway_index in skip:
            continue
        gateway_path = child("gateways", gateway_index)
        for index, address in enumerate(gateway["bind_addresses"]):
            path = child(child(gateway_path, "bind_addresses"), index)
            key = describe_address(address)
            if key in first:
                owner, owner_path = first[key]
                findings.error(path, f"{key} is already bound by gateway {owner!r} "
                                     f"({owner_path})")
            else:
                first[key] = (gateway["name"], path)
    admin = config.get("admin")
    if admin is not None:
        parts = split_host_port(admin["listen"])
        if parts is not None and parts[1] is not None:
            key = describe_address({"host": parts[0], "port": parts[1]})
            if key in first:
                owner, owner_path = first[key]
                findings.error("admin.listen", f"{key} is already bound by gateway "
                                               f"{owner!r} ({owner_path})")


def check_controllers(config: dict[str, Any], findings: Findings,
                      skip: frozenset[int] = frozenset()) -> None:
    """A ``controller`` interceptor sends requests to the admin listener: there must be one,
    and no upstream of its gateway may take the name its upstream has."""
    for index, gateway in enumerate(config["gateways"]):
        if index in skip or not has_controller(gateway):
            continue
        path = f"gateways[{index}]"
        if config["admin"] is None:
            where = next(i for i, e in enumerate(gateway["interceptors"])
                         if e["name"] == "controller" and e["enabled"])
            findings.error(f"{path}.interceptors[{where}].name",
                           "the controller serves the admin API on this gateway and needs "
                           "the admin section (admin: {listen: \"127.0.0.1:9901\"})")
        for number, upstream in enumerate(gateway["upstreams"]):
            if upstream["name"] == ADMIN_UPSTREAM:
                findings.error(f"{path}.upstreams[{number}].name",
                               f"{ADMIN_UPSTREAM!r} is the name of the controller's upstream")
