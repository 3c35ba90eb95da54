"""Dakia's top-level keys: accepted so a Dakia config loads as it is, then mapped or dropped.

Most of them tune Dakia's Rust runtime or its process handling and have no meaning on a
prefork model; each one present gives a notice saying so and is removed from the
normalised config. ``graceful_shutdown_timeout_seconds`` means what ``graceful_timeout``
means and becomes it, unless ``graceful_timeout`` is given too.
``upstream_keepalive_pool_size`` is a key of ours as well and is not handled here.
"""
from __future__ import annotations

from typing import Any

from .findings import Findings

_RUST_RUNTIME = "tunes Dakia's Rust runtime; accepted and ignored"

IGNORED_KEYS: dict[str, str] = {
    "daemon": "daemon mode is chosen on the command line (dakia-master start --daemon); "
              "accepted and ignored",
    "upgrade_sock": "binary upgrades pass the listening sockets to the new master "
                    "(USR2, DAKIA_INHERIT_FDS); accepted and ignored",
    "user": "start dakia-master as the user it should run as (e.g. systemd User=); "
            "accepted and ignored",
    "group": "start dakia-master with the group it should run as (e.g. systemd Group=); "
             "accepted and ignored",
    "threads": "dakia-prefork scales with worker processes (workers); accepted and ignored",
    "work_stealing": _RUST_RUNTIME,
    "upstream_connect_offload_threadpools": _RUST_RUNTIME,
    "upstream_connect_offload_thread_per_pool": _RUST_RUNTIME,
    "upstream_debug_ssl_keylog": "set SSLKEYLOGFILE in the environment of dakia-master to log "
                                 "upstream TLS keys; accepted and ignored",
    "grace_period_seconds": "draining starts at once and is bounded by graceful_timeout; "
                            "accepted and ignored",
}
"""Dakia-only top-level keys and the notice each one gives."""

GRACEFUL_SHUTDOWN = "graceful_shutdown_timeout_seconds"


def absorb_dakia_keys(config: dict[str, Any], findings: Findings) -> None:
    """Map or drop, in place, the Dakia-only keys of a top-level ``config``."""
    for key, message in IGNORED_KEYS.items():
        if key in config:
            del config[key]
            findings.notice(key, message)
    if GRACEFUL_SHUTDOWN in config:
        seconds = config.pop(GRACEFUL_SHUTDOWN)
        if "graceful_timeout" in config:
            findings.notice(GRACEFUL_SHUTDOWN, "ignored: graceful_timeout is given and wins")
        else:
            config["graceful_timeout"] = seconds
            findings.notice(GRACEFUL_SHUTDOWN, f"used as graceful_timeout ({seconds})")
