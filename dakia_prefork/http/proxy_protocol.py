"""The PROXY protocol, v1 and v2 (HAProxy's spec, proxy-protocol.txt), as a receiver.

Theory of operation
-------------------
A listener with ``proxy_protocol: true`` sits behind a proxy (HAProxy, a cloud balancer)
that opens each connection with a header naming the client's address, before any HTTP.
The header is the first thing read; ``parse`` decides on the bytes received so far:

- ``None``: not enough bytes yet to decide (read more, within the bounds below);
- ``(consumed, address)``: a valid header of ``consumed`` bytes; ``address`` is the
  client's IP as text, or None when the header says to use the connection's own
  addresses (v1 ``UNKNOWN``, v2 ``LOCAL``, the proxy's own health checks, and v2
  ``AF_UNSPEC``), or "" for a client on a unix socket (v2 ``AF_UNIX``: no IP);
- ``ProxyHeaderError``: not a valid header; the connection is closed without a word
  (an HTTP answer would be to a peer that does not speak HTTP first).

Bytes after the header are the start of HTTP and go to the parser. Signatures are checked
as soon as the first bytes arrive, so a client that starts with HTTP is refused at once,
and the whole header is bounded: v1 is at most 107 bytes (the spec's limit), v2 at most
``MAX_V2_LENGTH`` bytes of addresses and TLVs (TLVs are skipped, not interpreted). The
connection loop bounds the wait by ``limits.client_header_timeout`` as a whole.
"""
from __future__ import annotations

import ipaddress
import struct

V1_PREFIX = b"PROXY "
V1_MAX = 107                       # the spec's bound, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = 16                     # signature, version/command, family, length
MAX_V2_LENGTH = 4096               # of the variable part; the spec allows 65535
_V2_ADDRESS_SIZES = {1: 12, 2: 36, 3: 216}     # AF_INET, AF_INET6, AF_UNIX
MAX_HEADER = V2_HEADER + MAX_V2_LENGTH


class ProxyHeaderError(Exception):
    """The connection did not start with a valid PROXY protocol header."""


Parsed = tuple[int, "str | None"]


def parse(data: bytes) -> Parsed | None:
    """Decide on ``data``, the first bytes of a connection (see the module docstring)."""
    if data[:1] == b"P":
        if not V1_PREFIX.startswith(data[:len(V1_PREFIX)]):
            raise ProxyHeaderError("not a PROXY protocol header")
        return _parse_v1(data)
    if data[:1] == b"\r":
        if not V2_SIGNATURE.startswith(data[:len(V2_SIGNATURE)]):
            raise ProxyHeaderError("not a PROXY protocol header")
        return _parse_v2(data)
    if not data:
        return None
    raise ProxyHeaderError("not a PROXY protocol header")


def _parse_v1(data: bytes) -> Parsed | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise ProxyHeaderError("PROXY v1 line too long or not ended by CRLF")
        return None
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    if len(parts) < 2 or parts[0] != "PROXY":
        raise ProxyHeaderError("PROXY v1 line malformed")
    family = parts[1]
    if family == "UNKNOWN":
        return end + 2, None             # the rest of the line is to be ignored
    if family not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyHeaderError(f"PROXY v1 line malformed ({family!r})")
    _, _, source, destination, source_port, destination_port = parts
    version = 4 if family == "TCP4" else 6
    for text in (source, destination):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ProxyHeaderError(f"PROXY v1: {text!r} is not an address") from None
        if address.version != version:
            raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    for text in (source_port, destination_port):
        if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
            raise ProxyHeaderError(f"PROXY v1: {text!r} is not a port")
    return end + 2, _text(ipaddress.ip_address(source))


def _parse_v2(data: bytes) -> Parsed | None:
    if len(data) < V2_HEADER:
        return None
    version_command, family_protocol, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2:
        raise ProxyHeaderError("PROXY v2: unsupported version")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyHeaderError("PROXY v2: unknown command")
    if length > MAX_V2_LENGTH:
        raise ProxyHeaderError("PROXY v2: header too long")
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    if family > 3 or protocol > 2:
        raise ProxyHeaderError("PROXY v2: unknown address family or protocol")
    total = V2_HEADER + length
    if len(data) < total:
        return None
    if command == 0 or family == 0:
        # LOCAL (the proxy speaking for itself), or PROXY over an unspecified family:
        # the connection's own addresses are the right ones.
        return total, None
    size = _V2_ADDRESS_SIZES[family]
    if length < size:
        raise ProxyHeaderError("PROXY v2: addresses truncated")
    body = data[V2_HEADER:V2_HEADER + size]
    if family == 1:
        return total, _text(ipaddress.IPv4Address(body[:4]))
    if family == 2:
        return total, _text(ipaddress.IPv6Address(body[:16]))
    return total, ""                     # AF_UNIX: the client has no IP


def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """As the gateway writes client addresses (IPv4-mapped IPv6 as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
