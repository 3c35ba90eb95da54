"""The real client address behind trusted proxies (a gateway's ``real_ip``).

Theory of operation
-------------------
Behind a load balancer the TCP peer is the balancer, and the client's address is in a
header the balancer wrote. A header is only as trustworthy as whoever wrote it, so:

- the header is read only when the peer is one of ``trusted_proxies`` (CIDRs, IPv4 and
  IPv6); from any other peer the peer is the client, whatever the request says;
- ``x-forwarded-for`` is a list each hop appends to: it is walked from the right (the
  entry our peer wrote), past every entry that is itself a trusted proxy; the first one
  that is not is the client. An entry that is not an IP address ends the walk: the client
  is then the last trusted hop, who passed on the garbage. If every entry is trusted the
  leftmost is the client. Repeated header lines are one list (RFC 9110 5.3);
- ``x-real-ip`` holds one address: the client, if it is one valid IP in one header line.

The result feeds everything that asks for the client: filters' ``remote_addr``,
``ip_restriction``, the rate limiter's ``key: ip``, ``ip_hash``, the access log, and the
``X-Forwarded-For`` sent upstream. That one is rebuilt from the trusted part of the chain
(``forwarded_prefix``: the client and the trusted hops after it, the peer being appended by
forwarding.py as always), so an upstream that takes the leftmost entry gets the client too,
never an address the client made up. From an untrusted peer the prefix is empty: the peer
alone is sent.

Addresses come out in the gateway's usual text form (``ipaddress``'s: compressed IPv6,
IPv4-mapped IPv6 unmapped). Only gateways with ``real_ip`` build a ``RealIp``; the others
pay nothing per request.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..message.heads import Headers, RequestHead

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HEADERS = ("x-forwarded-for", "x-real-ip")


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address, or None: plain IPv4/IPv6, ``[v6]``, ``[v6]:port`` or
    ``v4:port`` (as some proxies write them); IPv4-mapped IPv6 as IPv4."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not text[end + 1:].startswith(":")):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return plain_address(text)


def plain_address(text: str) -> IPAddress | None:
    """``text`` (a bare IPv4 or IPv6 address) as an IP, IPv4-mapped IPv6 as IPv4; None
    if it is not one. A client behind a dual-stack listener then matches IPv4 rules."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """The networks of ``entries`` (a bare address is a /32 or /128); raises ValueError
    naming the first bad entry (host bits set included: a typo, usually)."""
    return [ipaddress.ip_network(entry, strict=True) for entry in entries]


class RealIp:
    """One gateway's ``real_ip``: ``resolve`` gives a request's client address."""

    __slots__ = ("networks", "header", "list_header", "_trusted_peers")

    def __init__(self, trusted_proxies: Iterable[str], header: str = "x-forwarded-for") -> None:
        if header not in HEADERS:
            raise ValueError(f"header must be one of {', '.join(HEADERS)}")
        self.networks = parse_networks(trusted_proxies)
        self.header = header.encode("latin-1")
        self.list_header = header == "x-forwarded-for"
        # Peers are few (the balancers): their verdict is cached, bounded.
        self._trusted_peers: dict[str, bool] = {}

    def trusts(self, address: IPAddress | None) -> bool:
        # An IPv4 address is never "in" an IPv6 network and vice versa: `in` says False.
        return address is not None and any(address in net for net in self.networks)

    def _peer_trusted(self, peer: str) -> bool:
        cache = self._trusted_peers
        verdict = cache.get(peer)
        if verdict is None:
            verdict = self.trusts(parse_address(peer)) if peer else False
            if len(cache) >= 1024:
                cache.clear()
            cache[peer] = verdict
        return verdict

    def resolve(self, peer: str, headers: Headers) -> tuple[str, str]:
        """(the client's address, the X-Forwarded-For prefix to send upstream before the
        peer: "" for none) for a request from ``peer`` with ``headers``."""
        if not self._peer_trusted(peer):
            return peer, ""
        name = self.header
        values = [value for key, value in headers if key == name]
        if not values:
            return peer, ""
        if not self.list_header:
            if len(values) != 1:
                return peer, ""          # two answers to "who is the client": neither
            address = parse_address(values[0].decode("latin-1"))
            if address is None:
                return peer, ""
            client = str(address)
            return client, client
        entries = b",".join(values).decode("latin-1").split(",")
        kept: list[str] = []             # the trusted chain, right to left
        for entry in reversed(entries):
            address = parse_address(entry)
            if address is None:
                break                     # garbage: the last trusted hop is the client
            kept.append(str(address))
            if not self.trusts(address):
                break
        if not kept:
            return peer, ""
        kept.reverse()
        return kept[0], ", ".join(kept)


def joined(prefix: str, peer: str) -> str:
    """The whole X-Forwarded-For sent upstream: ``prefix`` then the peer (no empty items:
    a unix-socket peer has no address)."""
    return prefix + ", " + peer if prefix and peer else prefix or peer


_XFF = b"x-forwarded-for"


_X_REAL_IP = b"x-real-ip"


def with_forwarded_for(head: RequestHead, prefix: str, real_ip: str | None = None) -> RequestHead:
    """``head`` with its X-Forwarded-For lines replaced by ``prefix`` (none if empty) and,
    when ``real_ip`` is given (a gateway that reads X-Real-IP), its X-Real-IP lines by that
    one address: the upstream reads the header the gateway believed, never one an
    untrusted client wrote."""
    drop = (_XFF,) if real_ip is None else (_XFF, _X_REAL_IP)
    headers: Headers = [(name, value) for name, value in head.headers if name not in drop]
    if prefix:
        headers.append((_XFF, prefix.encode("latin-1")))
    if real_ip:
        headers.append((_X_REAL_IP, real_ip.encode("latin-1")))
    return RequestHead(head.method, head.target, head.http_version, headers,
                       head.content_length, head.chunked, head.keep_alive,
                       head.expect_continue, head.upgrade)
