"""``ip_restriction``: allow or deny clients by address (CIDR lists, IPv4 and IPv6).

::

    config:
      allow: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
      deny: ["10.0.13.0/24"]

A client in ``deny`` gets 403; so does one outside ``allow`` when ``allow`` is not empty;
everyone else passes. The address is the request's ``remote_addr``: the TCP peer (an
IPv4-mapped IPv6 address as IPv4), or the client that a PROXY protocol header or the
gateway's ``real_ip`` names (routing/realip.py: a header only from a trusted proxy), never
an ``X-Forwarded-For`` an untrusted client wrote. A
client on a unix socket has no address: it is in no list, so an ``allow`` list refuses it.

A network with host bits set (``10.0.0.1/8``) is a config error: it usually means a typo.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ..routing.realip import plain_address
from .base import Interceptor, Problems, register
from .context import Context, Reply

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: list[str], where: str, problems: Problems) -> list[Network]:
    """The networks of ``entries`` (a bare address is a /32 or /128)."""
    networks: list[Network] = []
    for index, text in enumerate(entries):
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            hint = ""
            try:
                hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
            except ValueError:
                pass
            problems.add(f"{where}[{index}]", f"{exc}{hint}")
    return networks


def client_address(peer: str) -> Address | None:
    """The client's address as an IP, IPv4-mapped IPv6 unmapped; None if not an IP."""
    return plain_address(peer)


def in_any(address: Address | None, networks: list[Network]) -> bool:
    # An IPv4 address is never "in" an IPv6 network and vice versa: `in` says False.
    return address is not None and any(address in network for network in networks)


@register
class IpRestriction(Interceptor):
    name = "ip_restriction"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        self.allow = parse_networks(config.get("allow", []), "config.allow", problems)
        self.deny = parse_networks(config.get("deny", []), "config.deny", problems)
        if not config.get("allow") and not config.get("deny"):
            problems.add("config", "give allow, deny or both")
        problems.raise_any()
        self.forbidden = Reply(403, b"403 Forbidden\n")

    def request_filter(self, ctx: Context) -> Reply | None:
        address = client_address(ctx.request.remote_addr)
        if in_any(address, self.deny) or (self.allow and not in_any(address, self.allow)):
            return self.forbidden
        return None
