"""The built-in interceptors by name: where each is implemented, and what it needs.

A leaf: this module imports nothing of the gateway's, so ``config/`` knows every built-in
name without importing a single implementation, and ``plugins/loader.py`` knows them without
importing ``config/``. An implementation is imported when it is needed, and only then:
building a chain (``base.REGISTRY`` looks it up by name) or checking a config entry that
names it. A process loads the code of the interceptors its config uses, and no other.

``pure`` says an interceptor needs nothing from a worker: its ``attach`` ignores the
``Resources`` (resources.py), so it is built, checked and run the same in the master's
checks, in a unit test and in a worker. The others take something only a worker has
(shared-memory buckets, an HTTP client, per-worker pools) in ``attach``, and are still built
and checked without it.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

GROUP = "dakia_prefork.interceptors"
"""The entry-point group third-party interceptors are declared in."""


class Builtin(NamedTuple):
    name: str
    path: str | None
    """``"module:Class"`` of the implementation; None for a name this version reserves
    but does not implement (a config may carry it disabled)."""
    pure: bool
    """Needs nothing from a worker (see the module docstring)."""


def _builtins(*entries: Builtin) -> Mapping[str, Builtin]:
    return MappingProxyType({entry.name: entry for entry in entries})


_I = "dakia_prefork.interceptors."
_P = "dakia_prefork.plugins."

BUILTINS: Mapping[str, Builtin] = _builtins(
    Builtin("basic_auth", _I + "basic_auth:BasicAuth", True),
    Builtin("controller", _I + "controller:Controller", True),
    Builtin("cors", _I + "cors:Cors", True),
    Builtin("external_plugin", _P + "external:ExternalPlugin", False),
    Builtin("ip_restriction", _I + "ip_restriction:IpRestriction", True),
    Builtin("jwt_auth", _I + "jwt_auth:JwtAuth", True),
    Builtin("key_auth", _I + "key_auth:KeyAuth", True),
    Builtin("metrics", _I + "metrics:Metrics", False),
    Builtin("native_plugin", _P + "native:NativePlugin", False),
    Builtin("rate_limiter", _I + "rate_limiter:RateLimiter", False),
    Builtin("request_id", _I + "request_id:RequestId", True),
    Builtin("request_rewrite", _I + "request_rewrite:RequestRewrite", True),
    Builtin("response_rewrite", _I + "response_rewrite:ResponseRewrite", True),
    Builtin("server_version", _I + "server_version:ServerVersion", True),
    Builtin("short_circuit", _I + "short_circuit:ShortCircuit", True),
    Builtin("try_file", _I + "try_file:TryFile", False),
    Builtin("use_file", _I + "use_file:UseFile", True),
)
"""Every built-in interceptor name a config may use, with its implementation."""

NAMES: frozenset[str] = frozenset(BUILTINS)
"""The built-in interceptor names."""

IMPLEMENTED: frozenset[str] = frozenset(name for name, entry in BUILTINS.items()
                                        if entry.path is not None)
"""The built-in names this version implements."""
