"""A gateway's ``acme`` block: the checks the schema cannot make, and its paths resolved.

- ``directory`` is an ``https://`` URL (RFC 8555 6.1: ACME runs over HTTPS only);
- ``names`` are DNS host names, lower-cased, each once; a wildcard is refused, since the
  HTTP-01 challenge that the gateway answers cannot prove one (Let's Encrypt asks DNS-01
  for those), and so is an IP literal;
- ``storage`` and ``ca_file`` are made absolute against the config's directory, and
  ``ca_file`` must be a readable file now rather than a failed renewal in a month.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

from .findings import Findings
from .location import child
from .paths import resolve

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def host_name_problem(name: str) -> str | None:
    """Why ``name`` (lower-cased) cannot be a name of an HTTP-01 certificate, or None."""
    if name.startswith("*."):
        return ("a wildcard name cannot be proved by HTTP-01, the challenge the gateway "
                "answers: list each name")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return "an IP address: ACME certificates here are for DNS names"
    labels = name.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "not a DNS host name (letters, digits and '-' in dot-separated labels)"
    return None


def normalise_acme(gateway: dict[str, Any], path: str, base_dir: str,
                   findings: Findings) -> None:
    """Check and normalise ``gateway["acme"]`` in place (nothing to do when it is null)."""
    acme = gateway.get("acme")
    if acme is None:
        return
    where = child(path, "acme")
    directory = acme["directory"]
    if not directory.startswith("https://") or len(directory) <= len("https://"):
        findings.error(child(where, "directory"),
                       f"expected an https:// URL (ACME runs over HTTPS), got {directory!r}")
    names: list[str] = []
    for index, raw in enumerate(acme["names"]):
        name = raw.lower().rstrip(".")
        problem = host_name_problem(name)
        if problem is not None:
            findings.error(child(child(where, "names"), index), f"{raw!r}: {problem}")
        elif name in names:
            findings.error(child(child(where, "names"), index), f"{raw!r} is listed twice")
        else:
            names.append(name)
    acme["names"] = names
    acme["storage"] = resolve(acme["storage"], base_dir)
    if os.path.exists(acme["storage"]) and not os.path.isdir(acme["storage"]):
        findings.error(child(where, "storage"), f"not a directory: {acme['storage']}")
    if acme["ca_file"] is not None:
        acme["ca_file"] = resolve(acme["ca_file"], base_dir)
        if not os.path.isfile(acme["ca_file"]):
            findings.error(child(where, "ca_file"), f"no such file: {acme['ca_file']}")
    acme["retry_seconds"] = float(acme["retry_seconds"])
    acme["renew_before_days"] = int(acme["renew_before_days"])


def check_acme_listeners(gateway: dict[str, Any], path: str, findings: Findings) -> None:
    """A TLS listener without certificates serves the gateway's ACME certificate: it
    needs an ``acme`` block. And HTTP-01 needs a plain TCP listener the CA can reach."""
    binds = gateway["bind_addresses"]
    acme = gateway.get("acme")
    for index, bind in enumerate(binds):
        tls = bind.get("tls")
        if tls is not None and not tls["certificates"] and acme is None:
            findings.error(child(child(child(path, "bind_addresses"), index), "tls"),
                           "no certificates: list some, or give the gateway an acme block "
                           "to serve its ACME certificate here")
    if acme is not None and not any("port" in b and "tls" not in b for b in binds):
        findings.notice(child(path, "acme"),
                        "the gateway has no plain TCP listener: the CA validates HTTP-01 "
                        "on port 80 of each name, so it must reach one (maybe through a "
                        "proxy in front)")
