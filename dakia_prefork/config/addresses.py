"""Socket addresses in a config: ``{host, port}`` or ``{unix: path}``, normalised."""
from __future__ import annotations

from typing import Any

from ..routing.hosts import split_host_port
from .findings import Findings
from .location import child
from .paths import resolve


def normalise_address(address: dict[str, Any], path: str, base_dir: str,
                      findings: Findings) -> dict[str, Any] | None:
    """The canonical ``{host, port}`` or ``{unix}`` of a schema-valid ``address``.

    The host is lower-cased, IPv6 brackets are removed and the literal compressed; a unix
    path is made absolute. Returns None (with an error recorded) if the host is malformed.
    """
    if "unix" in address:
        return {"unix": resolve(address["unix"], base_dir)}
    host_path = child(path, "host")
    parts = split_host_port(address["host"])
    if parts is None:
        findings.error(host_path, f"{address['host']!r} is not an IP address or a host name")
        return None
    if parts[1] is not None:
        findings.error(host_path, "give the port in 'port', not in 'host'")
        return None
    return {"host": parts[0], "port": int(address["port"])}


def describe_address(address: dict[str, Any]) -> str:
    """An address as people write it: ``0.0.0.0:80``, ``[::]:80``, ``unix:/run/x.sock``."""
    if "unix" in address:
        return f"unix:{address['unix']}"
    host = address["host"]
    return f"[{host}]:{address['port']}" if ":" in host else f"{host}:{address['port']}"
