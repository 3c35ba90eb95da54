"""Checks of a gateway's ``real_ip`` (routing/realip.py says what it does).

The schema has the shape and the default header; here each ``trusted_proxies`` entry is
parsed as the worker will parse it, so a bad CIDR is a ``check`` error at its place, never
a worker that cannot load the version.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from .findings import Findings
from .location import child


def check_real_ip(gateway: dict[str, Any], path: str, findings: Findings) -> None:
    real_ip = gateway.get("real_ip")
    if real_ip is None:
        return
    proxies_path = child(child(path, "real_ip"), "trusted_proxies")
    for index, entry in enumerate(real_ip["trusted_proxies"]):
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            hint = ""
            try:
                hint = f"; did you mean {ipaddress.ip_network(entry, strict=False)}?"
            except ValueError:
                pass
            findings.error(child(proxies_path, index), f"{exc}{hint}")
