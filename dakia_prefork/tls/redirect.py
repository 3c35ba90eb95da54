"""``redirect_https: true``: where a plain listener sends its clients.

The target is the gateway's first TLS listener with a port, in ``bind_addresses`` order
(config/listener_tls.py refuses ``redirect_https`` in a gateway without one). Its port is
left out of the URL when it is 443, the default of ``https``. The host is the request's, as
the gateway matched it against its downstreams (lower-case, without its port), the path and
query as the client sent them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config.addresses import describe_address


def https_redirects(binds: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """The labels of the plain listeners that redirect, each with the ``:port`` suffix of
    the URL (``b""`` for 443)."""
    port = next((int(b["port"]) for b in binds if "tls" in b and "port" in b), None)
    if port is None:
        return {}
    suffix = b"" if port == 443 else b":%d" % port
    return {describe_address(dict(b)): suffix for b in binds
            if b.get("redirect_https") and "tls" not in b}


def location(host: str, port_suffix: bytes, target: bytes) -> bytes:
    """``https://host[:port]/path?query`` (IPv6 hosts in brackets)."""
    name = host.encode("idna") if not host.isascii() else host.encode("ascii")
    if b":" in name:
        name = b"[" + name + b"]"
    return b"https://" + name + port_suffix + target


def status_for(method: bytes) -> int:
    """301 for GET and HEAD (what every client follows); 308 for the others, which keeps
    the method and the body (a 301 lets clients turn a POST into a GET)."""
    return 301 if method in (b"GET", b"HEAD") else 308
