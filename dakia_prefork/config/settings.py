"""The top-level settings: paths made absolute, YAML quirks undone, the admin listener."""
from __future__ import annotations

import os
from typing import Any

from ..routing.hosts import split_host_port
from .access_format import FIELD_SET, FIELDS, check_format
from .addresses import describe_address
from .findings import Findings
from .paths import resolve

STDOUT = "stdout"
STDERR = "stderr"
OFF = "off"

_INTEGERS = ("keep_versions", "upstream_keepalive_pool_size")
_LIMIT_INTEGERS = ("max_header_bytes", "max_body_bytes", "max_connections")


def normalise_settings(config: dict[str, Any], base_dir: str, findings: Findings) -> None:
    """Normalise, in place, the top-level keys of a defaults-filled ``config``.

    Everything but ``gateways`` (see gateways.py) and the Dakia keys (see dakia.py).
    """
    # JSON Schema counts 8.0 as an integer; the code downstream wants an int.
    if config["workers"] != "auto":
        config["workers"] = int(config["workers"])
    for key in _INTEGERS:
        config[key] = int(config[key])
    limits = config["limits"]
    for key in _LIMIT_INTEGERS:
        if limits[key] is not None:
            limits[key] = int(limits[key])

    config["pid_file"] = resolve(config["pid_file"], base_dir)
    config["state_dir"] = resolve(config["state_dir"], base_dir)
    access_log = config["access_log"]
    if access_log is False:
        # YAML 1.1 reads a bare `off` as false; the user meant the word.
        config["access_log"] = OFF
    elif access_log not in (STDOUT, OFF):
        config["access_log"] = resolve(access_log, base_dir)
    problem = check_format(config["access_log_format"])
    if problem is not None:
        findings.error("access_log_format", problem)
    for index, name in enumerate(config["access_log_fields"] or ()):
        if name not in FIELD_SET:
            findings.error(f"access_log_fields[{index}]",
                           f"unknown field {name!r} (known: {', '.join(FIELDS)})")
    if config["error_log"] != STDERR:
        config["error_log"] = resolve(config["error_log"], base_dir)

    if config["admin"] is not None:
        _normalise_admin(config["admin"], base_dir, findings)
    etcd = (config["config_source"] or {}).get("etcd")
    if etcd is not None:
        # Files named in the local file are the node's own: relative to that file.
        for key in ("ca_file", "cert_file", "key_file"):
            if etcd[key] is not None:
                etcd[key] = resolve(etcd[key], base_dir)
        if (etcd["cert_file"] is None) != (etcd["key_file"] is None):
            findings.error("config_source.etcd.cert_file",
                           "cert_file and key_file go together (a client certificate)")
        if etcd["password"] is not None and etcd["username"] is None:
            findings.error("config_source.etcd.password", "a password needs a username")


def _normalise_admin(admin: dict[str, Any], base_dir: str, findings: Findings) -> None:
    listen = admin["listen"]
    parts = split_host_port(listen)
    if parts is None or parts[1] is None or parts[1] == 0:
        findings.error("admin.listen",
                       f"expected \"host:port\" (e.g. \"127.0.0.1:9901\"), got {listen!r}")
    else:
        admin["listen"] = describe_address({"host": parts[0], "port": parts[1]})
    token_file = admin["token_file"]
    if token_file is not None:
        admin["token_file"] = resolve(token_file, base_dir)
        # The token is read, not written: a missing file is a config error now rather
        # than a controller that cannot start later.
        if not os.path.isfile(admin["token_file"]):
            findings.error("admin.token_file", f"no such file: {admin['token_file']}")
