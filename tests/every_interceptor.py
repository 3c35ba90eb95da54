"""One interceptor entry per built-in the gateway implements, each as the master checks it.

For the tests that watch what a process loads while it checks or runs a config with every
built-in (tests/unit/test_import_boundaries.py, tests/integration/test_boundaries.py).
Each entry is enabled and valid: checking the config builds every chain. The entries carry
the filter ``none`` (add a filter of that name that matches no request) so that a gateway
serving this config answers its requests as if they were not there.
"""
from __future__ import annotations

import os
from typing import Any

import posix_ipc

from dakia_prefork.interceptors.registry import BUILTINS

FILTER = {"name": "none", "path": {"$starts_with": "/never-matched/"}}


def admin_section() -> dict[str, Any]:
    """The ``admin`` section a config with these entries needs (the controller sends to
    it), on a port nothing listens on now."""
    from tests.integration.harness import free_port
    return {"listen": f"127.0.0.1:{free_port()}"}


def interceptor_entries(directory: str) -> list[dict[str, Any]]:
    """Enabled entries for every implemented built-in; files they name go in ``directory``."""
    files = os.path.join(directory, "files")
    os.makedirs(files, exist_ok=True)
    # native_plugin's check loads the library in a subprocess and looks its symbol up: any
    # shared object will do, and posix_ipc's extension is one the gateway has anyway.
    library = posix_ipc.__file__
    configs: dict[str, dict[str, Any]] = {
        "server_version": {"config": {}},
        "request_id": {"config": {}},
        "metrics": {"config": {}},
        "basic_auth": {"config": {"realm": "api", "users": [
            {"username": "alice", "password": "wonderland"}]}},
        "key_auth": {"config": {"keys": [{"name": "ci", "key": "0123456789abcdef"}]}},
        "jwt_auth": {"config": {"algorithms": ["HS256"],
                                "secret": "a-secret-of-at-least-32-bytes-long!"}},
        "request_rewrite": {"config": {"strip_prefix": "/api", "set_headers": {"x-a": "1"}}},
        "response_rewrite": {"config": {"set_headers": {"x-b": "2"}}},
        "short_circuit": {"response": {"status": 503, "body": "maintenance"}},
        "use_file": {"config": {"root": files}},
        "try_file": {"config": {"root": os.path.join(directory, "cache")}},
        "cors": {"config": {"allow_origins": ["https://app.example"]}},
        "ip_restriction": {"config": {"allow": ["10.0.0.0/8"]}},
        "rate_limiter": {"config": {"capacity": 100, "refill_rate": 10,
                                    "refill_interval": 1000, "key": "ip"}},
        "external_plugin": {"config": {"socket": os.path.join(directory, "plugin.sock")}},
        "native_plugin": {"config": {"library": library, "symbol": "PyInit_posix_ipc"}},
        # Needs the config's admin section: see ADMIN.
        "controller": {"config": {"strip_prefix": "/admin"}},
    }
    implemented = {name for name, builtin in BUILTINS.items() if builtin.path is not None}
    assert set(configs) == implemented, "a built-in without an entry here (or one too many)"
    entries = [{"name": name, "filter": "none", **more} for name, more in configs.items()]
    # The cluster-wide limiter too: the master must check it without importing redis.
    entries.append({"name": "rate_limiter", "filter": "none", "config": {
        "capacity": 100, "refill_rate": 10, "refill_interval": 1000, "policy": "redis",
        "redis": {"url": "redis://127.0.0.1:1/0"}}})
    return entries
